"""core.judge_split: the held-out split is by prompt, deterministic from the seed, and disjoint."""

import random

import pytest

from alma.core.judge_split import split_by_prompt
from alma.core.seeds import JudgeExample, bundled, load_judge


@pytest.fixture(scope="module")
def seed():
    return load_judge(bundled("judge.jsonl"))


def test_split_is_by_prompt_and_disjoint(seed):
    split = split_by_prompt(seed, 0.25, seed=0)
    train_prompts = {e.prompt for e in split.train}
    held_prompts = {e.prompt for e in split.heldout}
    assert not train_prompts & held_prompts, "both responses of a prompt go to the same side"
    assert len(held_prompts) == round(0.25 * len({e.prompt for e in seed}))
    assert sorted(split.train + split.heldout, key=seed.index) == seed
    assert [e for e in seed if e in split.heldout] == split.heldout, "rows keep file order"


def test_split_depends_on_the_seed_only(seed):
    first = split_by_prompt(seed, 0.25, seed=0)
    shuffled = list(seed)
    random.Random(1).shuffle(shuffled)
    assert {e.prompt for e in split_by_prompt(shuffled, 0.25, seed=0).heldout} == {e.prompt for e in first.heldout}
    assert split_by_prompt(seed, 0.25, seed=0) == first
    others = [{e.prompt for e in split_by_prompt(seed, 0.25, seed=s).heldout} for s in range(1, 6)]
    assert any(o != {e.prompt for e in first.heldout} for o in others)


def test_small_and_zero_fractions():
    rows = [JudgeExample(p, r, s) for p, r, s in [("a", "x", 1), ("a", "y", 9), ("b", "x", 3), ("b", "z", 4)]]
    tiny = split_by_prompt(rows, 0.01, seed=0)
    assert len({e.prompt for e in tiny.heldout}) == 1 and len({e.prompt for e in tiny.train}) == 1
    assert len(split_by_prompt(rows, 0.9, seed=0).train) == 2, "training keeps at least one prompt"
    none = split_by_prompt(rows, 0.0, seed=0)
    assert none.heldout == [] and none.train == rows
    with pytest.raises(ValueError):
        split_by_prompt(rows, 1.0, seed=0)
