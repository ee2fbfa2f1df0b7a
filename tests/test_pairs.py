"""Preference pairs for DPO: chosen = best-of-N, rejected = a random (or the worst) lower-scored response."""

import math
import random

import pytest

from alma.core.pairs import preference_pairs
from alma.core.selection import best_of_n


def row(prompt, checkpoint, sample, score, response=None):
    return {"prompt_id": prompt, "prompt": f"q {prompt}", "checkpoint": checkpoint, "sample": sample,
            "score": score, "response": response or f"{prompt}/{checkpoint}/{sample}"}


ROWS = [row("p", "sft-1", 0, 3.0), row("p", "sft-1", 1, 9.0), row("p", "sft-2", 0, 1.0),
        row("p", "sft-2", 1, 5.0), row("p", "latest", 0, 7.0)]


@pytest.mark.parametrize("rule", ["best_vs_random", "best_vs_worst"])
def test_chosen_is_best_of_n_and_rejected_is_never_the_best(rule):
    for seed in range(50):
        pairs, counts = preference_pairs(ROWS, rule, seed)
        assert len(pairs) == counts.pairs == counts.prompts == 1
        assert pairs[0].chosen == best_of_n(ROWS)[0] and pairs[0].chosen["score"] == 9.0
        assert pairs[0].rejected is not pairs[0].chosen and pairs[0].rejected["score"] < 9.0


def test_best_vs_worst_takes_the_lowest():
    pairs, _ = preference_pairs(ROWS, "best_vs_worst", 0)
    assert pairs[0].rejected["score"] == 1.0


def test_best_vs_random_covers_every_lower_response_and_is_seeded():
    picked = {preference_pairs(ROWS, "best_vs_random", seed)[0][0].rejected["score"] for seed in range(200)}
    assert picked == {1.0, 3.0, 5.0, 7.0}
    first = preference_pairs(ROWS, "best_vs_random", 7)[0]
    shuffled = ROWS[:]
    random.Random(1).shuffle(shuffled)
    assert preference_pairs(shuffled, "best_vs_random", 7)[0] == first, "row order does not matter"
    assert preference_pairs(ROWS, "best_vs_random", 7)[0] == first, "same seed, same pair"


def test_ties_with_the_best_are_never_rejected():
    tied = [row("p", "sft-1", 0, 8.0), row("p", "sft-2", 0, 8.0), row("p", "latest", 0, 2.0)]
    for seed in range(30):
        pairs, _ = preference_pairs(tied, "best_vs_random", seed)
        assert pairs[0].chosen == best_of_n(tied)[0] and pairs[0].chosen["checkpoint"] == "sft-1"
        assert pairs[0].rejected["checkpoint"] == "latest", "sft-2 ties the best: never rejected"
    worst_tie = [row("p", "sft-1", 0, 9.0), row("p", "sft-2", 1, 2.0), row("p", "sft-2", 0, 2.0)]
    assert preference_pairs(worst_tie, "best_vs_worst", 0)[0][0].rejected["sample"] == 0, "first in order"


def test_prompts_that_give_no_pair():
    rows = [row("single", "sft-1", 0, 5.0),
            row("all-tied", "sft-1", 0, 4.0), row("all-tied", "sft-2", 0, 4.0),
            row("same-text", "sft-1", 0, 6.0, "Paris."), row("same-text", "sft-2", 0, 2.0, "Paris. "),
            row("unscored", "sft-1", 0, 7.0), row("unscored", "sft-2", 0, math.nan),
            row("ok", "sft-1", 0, 6.0), row("ok", "sft-2", 0, math.nan), row("ok", "latest", 0, 1.0)]
    pairs, counts = preference_pairs(rows, "best_vs_random", 0)
    assert [p.chosen["prompt_id"] for p in pairs] == ["ok"] and pairs[0].rejected["score"] == 1.0
    assert (counts.prompts, counts.pairs, counts.single, counts.no_lower, counts.unscored_rows) == (5, 1, 2, 2, 2)


def test_no_rows_and_unknown_rule():
    assert preference_pairs([], "best_vs_random", 0)[0] == []
    with pytest.raises(ValueError, match="best_vs_random"):
        preference_pairs(ROWS, "best_vs_median", 0)


def test_many_prompts_sorted_and_independent():
    rows = [row(f"p{i}", c, s, float((i * 7 + s * 3 + len(c)) % 11)) for i in range(20)
            for c in ("sft-1", "sft-2") for s in range(3)]
    pairs, counts = preference_pairs(rows, "best_vs_random", 3)
    ids = [p.chosen["prompt_id"] for p in pairs]
    assert ids == sorted(ids) and counts.pairs + counts.no_lower + counts.single == 20
    alone = preference_pairs([r for r in rows if r["prompt_id"] == ids[0]], "best_vs_random", 3)[0]
    assert alone[0] == pairs[0], "a prompt's draw does not depend on the other prompts"
