"""The judge seed's held-out split: whole prompts held out, the same ones for every run with one seed.

The split is by prompt, never by row: the eval's main measure compares two responses to the same prompt,
so both must be held out together, and a judge that trained on one response to a prompt has seen the
prompt it is then tested on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from alma.core.seeds import JudgeExample

@dataclass(frozen=True)
class JudgeSplit:
    train: list[JudgeExample]
    heldout: list[JudgeExample]


def split_by_prompt(examples: Sequence[JudgeExample], holdout_fraction: float, seed: int) -> JudgeSplit:
    """Hold out round(fraction x prompts) whole prompts, chosen from `seed` alone; rows keep file order.

    Prompts are sorted before shuffling, so the split does not depend on the order of the seed file. Any
    positive fraction holds out at least one prompt, and training always keeps at least one.
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction {holdout_fraction} is outside [0, 1)")
    prompts = sorted({example.prompt for example in examples})
    count = round(holdout_fraction * len(prompts))
    if holdout_fraction > 0:
        count = min(max(count, 1), len(prompts) - 1)
    # A string seed is hashed deterministically by random.Random (unlike hash() of a str).
    random.Random(f"judge-holdout-{seed}").shuffle(prompts)
    held = set(prompts[:count])
    return JudgeSplit(
        train=[example for example in examples if example.prompt not in held],
        heldout=[example for example in examples if example.prompt in held],
    )
