"""core.distill: which synthetic pairs the judge labels, and the stochastically rounded targets."""

import random
import statistics

import pytest

from alma.core.distill import pick_pairs, stochastic_round


def responses():
    return [{"prompt_id": f"p{p}", "checkpoint": c, "sample": s, "response": f"{p}{c}{s}"}
            for p in range(4) for c in ("sft-1", "sft-2") for s in range(3)]


def test_pick_pairs_is_seeded_and_order_free():
    rows = responses()
    picked = pick_pairs(rows, 5, seed=3)
    assert len(picked) == 5 and len({r["response"] for r in picked}) == 5
    shuffled = list(rows)
    random.Random(0).shuffle(shuffled)
    assert pick_pairs(shuffled, 5, seed=3) == picked
    assert pick_pairs(rows, 5, seed=4) != picked
    assert len(pick_pairs(rows, 100, seed=3)) == len(rows), "all of them when there are fewer"


def test_stochastic_round_is_unbiased_and_fixed_per_key():
    assert stochastic_round(7.0, "k") == 7 and stochastic_round(10.0, "k") == 10 and stochastic_round(0.0, "k") == 0
    targets = [stochastic_round(7.3, f"pair-{i}") for i in range(4000)]
    assert set(targets) == {7, 8}
    assert statistics.mean(targets) == pytest.approx(7.3, abs=0.03)
    assert [stochastic_round(7.3, f"pair-{i}") for i in range(50)] == targets[:50]
    with pytest.raises(ValueError):
        stochastic_round(10.5, "k")
