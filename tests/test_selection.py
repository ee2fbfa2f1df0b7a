"""Checkpoint-mix split, best-of-N (NaN scores skipped) and draw-without-reuse."""

import pytest

from alma.core.draw import draw_random
from alma.core.errors import RunStateError
from alma.core.selection import best_of_n, effective_mix, split_n


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 200])
def test_split_n_exact_and_balanced(n):
    counts = split_n(n, {"sft-1": 1, "sft-2": 1, "latest": 1})
    assert sum(counts.values()) == n
    assert max(counts.values()) - min(counts.values(), default=0) <= 1 or len(counts) < 3


def test_split_n_weighted():
    assert split_n(10, {"a": 3, "b": 1}) == {"a": 8, "b": 2}
    assert split_n(6, {"sft-1": 1, "sft-2": 1, "latest": 1}) == {"latest": 2, "sft-1": 2, "sft-2": 2}


def test_round_one_has_no_latest():
    mix = {"sft-1": 1.0, "sft-2": 1.0, "latest": 1.0}
    assert effective_mix(mix, 1) == {"sft-1": 1.0, "sft-2": 1.0}
    assert effective_mix(mix, 2) == mix
    with pytest.raises(ValueError):
        effective_mix({"latest": 1.0}, 1)


def test_best_of_n_is_max_with_stable_ties():
    rows = [
        {"prompt_id": "a", "checkpoint": "sft-2", "sample": 0, "score": 7.0},
        {"prompt_id": "a", "checkpoint": "sft-1", "sample": 1, "score": 7.0},
        {"prompt_id": "a", "checkpoint": "latest", "sample": 0, "score": 3.0},
        {"prompt_id": "b", "checkpoint": "sft-1", "sample": 0, "score": 1.5},
        {"prompt_id": "b", "checkpoint": "sft-1", "sample": 1, "score": 9.25},
    ]
    best = best_of_n(rows)
    assert [(b["prompt_id"], b["checkpoint"], b["sample"]) for b in best] == [("a", "sft-1", 1), ("b", "sft-1", 1)]
    assert best_of_n(list(reversed(rows))) == best


def test_best_of_n_skips_unscored_rows():
    nan = float("nan")
    rows = [
        {"prompt_id": "a", "checkpoint": "sft-1", "sample": 0, "score": nan},
        {"prompt_id": "a", "checkpoint": "sft-1", "sample": 1, "score": 2.0},
        {"prompt_id": "b", "checkpoint": "sft-1", "sample": 0, "score": nan},
    ]
    assert [(b["prompt_id"], b["sample"]) for b in best_of_n(rows)] == [("a", 1)], "a NaN never wins, nor stands in"


def test_draw_never_reuses_and_is_order_independent():
    pool = [f"p{i}" for i in range(20)]
    used: set[str] = set()
    draws = []
    for r in range(1, 5):
        d = draw_random(pool, used, 5, seed=r)
        assert len(set(d)) == 5 and not used & set(d)
        used |= set(d)
        draws.append(d)
    assert used == set(pool)
    assert draw_random(list(reversed(pool)), set(), 5, seed=1) == draws[0]
    with pytest.raises(RunStateError, match="0 unused prompts"):
        draw_random(pool, used, 1, seed=9)
