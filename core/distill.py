"""Self-distillation of the judge, the pure part: which synthetic pairs to label, and the training target.

The target format (the paper does not state its own) is the judge's usual answer "[[N]]" with N the
real-valued score rounded STOCHASTICALLY: 7.3 becomes 8 with probability 0.3 and 7 otherwise, drawn from
a seed fixed per pair. Why:
- the format is unchanged, so the distilled judge is trained with the same SFT path as the first judge
  and every scoring mode (expected, argmax, sampled) reads it exactly as before;
- unlike rounding to the nearest integer, which maps 7.1 and 7.4 to the same target and pulls every
  score toward the nearest integer, the expected target equals the real-valued label, so over many pairs
  the judge is trained toward the teacher's real-valued scores rather than toward an integer judge;
- soft targets (a KL loss on the full 0..10 distribution) would carry the most information but need a
  custom trainer loss and per-token label paths (a "10" can take two tokens), for a gain the paper does
  not measure.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import TypeVar

Row = TypeVar("Row", bound=Mapping)


def pick_pairs(rows: Sequence[Row], count: int, seed: int) -> list[Row]:
    """`count` responses drawn without replacement (all of them if fewer), the same for the same seed.

    Rows are ordered by (prompt_id, checkpoint, sample) first, so the draw does not depend on the order
    in which Ray Data wrote the response files.
    """
    ordered = sorted(rows, key=lambda row: (str(row["prompt_id"]), str(row["checkpoint"]), int(row["sample"])))
    picked = random.Random(f"distill-pairs-{seed}").sample(ordered, min(count, len(ordered)))
    return sorted(picked, key=lambda row: (str(row["prompt_id"]), str(row["checkpoint"]), int(row["sample"])))


def stochastic_round(score: float, key: str) -> int:
    """floor(score) or floor(score) + 1, the latter with probability frac(score), fixed by `key`."""
    if not 0.0 <= score <= 10.0:
        raise ValueError(f"score {score} is outside 0..10")
    low = math.floor(score)
    return low + (random.Random(key).random() < score - low)
