"""Self-distillation of the judge, the pure part: which round-1 responses to label, and the training target.

The target format (the paper does not state its own) is the judge's usual answer "[[N]]", so that the
distilled judge trains through the same SFT path as the first judge and every scoring mode reads it as
before. N comes from the teacher's label distribution in one of two ways (`judge.distill_target`):

- `sampled` (default): N is DRAWN from the teacher's renormalised 0..10 distribution, with a seed fixed
  per pair. Over many pairs this is an unbiased estimate of training on the full distribution (the
  cross-entropy with a sampled label has the soft-target cross-entropy as its expectation), without a
  custom loss or per-token label paths (a "10" can take two tokens). A teacher torn between 4 and 8 is
  trained to stay torn, and keeps what separates one response from another.
- `rounded`: N is the real-valued (expected) score rounded STOCHASTICALLY, 7.3 -> 8 with probability 0.3,
  else 7. Its mean equals the teacher's score, but its spread does not: a bimodal teacher (0.64 on 8,
  0.24 on 4: expected 6.1) is taught to say 5 or 6, a label it never gave. Measured on the cpu-align run
  (docs/alignment.md): the judge's standard deviation over round 1's responses fell from 0.26 to 0.023.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import TypeVar

Row = TypeVar("Row", bound=Mapping)


def pick_responses(rows: Sequence[Row], count: int, seed: int) -> list[Row]:
    """`count` responses drawn without replacement (all of them if fewer), the same for the same seed.

    Rows are ordered by (prompt_id, checkpoint, sample) first, so the draw does not depend on the order
    in which Ray Data wrote the response files.
    """
    ordered = sorted(rows, key=lambda row: (str(row["prompt_id"]), str(row["checkpoint"]), int(row["sample"])))
    # The key keeps its old wording ("pairs"): a new one would pick other responses than runs made before.
    picked = random.Random(f"distill-pairs-{seed}").sample(ordered, min(count, len(ordered)))
    return sorted(picked, key=lambda row: (str(row["prompt_id"]), str(row["checkpoint"]), int(row["sample"])))


def sample_label(distribution: Sequence[float], key: str) -> int:
    """A label 0..len-1 drawn from `distribution` (renormalised; it need not sum to 1), fixed by `key`."""
    if not distribution or any(not math.isfinite(p) or p < 0 for p in distribution) or sum(distribution) <= 0:
        raise ValueError(f"not a label distribution: {list(distribution)}")
    return random.Random(key).choices(range(len(distribution)), weights=distribution)[0]


def stochastic_round(score: float, key: str) -> int:
    """floor(score) or floor(score) + 1, the latter with probability frac(score), fixed by `key`."""
    if not 0.0 <= score <= 10.0:
        raise ValueError(f"score {score} is outside 0..10")
    low = math.floor(score)
    return low + (random.Random(key).random() < score - low)
