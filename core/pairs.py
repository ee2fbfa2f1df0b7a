"""Preference pairs for the DPO variant: per prompt, chosen = the best-of-N response, rejected = another one.

Rules (`dpo.pairs`):
- best_vs_random (the paper's): the rejected response is drawn uniformly from the prompt's other responses
  that the judge scored strictly below the best;
- best_vs_worst (the paper's ablation): the lowest-scored of those (ties: the first in (checkpoint,
  sample) order, as best-of-N breaks its ties).

The chosen response is exactly best-of-N's (core.selection), so D_r and the pairs agree. A response is
never its own prompt's rejected one when it ties the best score or repeats the best response's text: the
judge prefers neither, and DPO on two equal texts has no gradient. NaN scores (sampled judgments that
parsed nothing) are no scores and take no part. The random draw is seeded by the run seed, the round and the
prompt, over candidates in a fixed order, so it does not depend on row order and reruns agree.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from alma.core.selection import best_of_n

PAIR_RULES = ("best_vs_random", "best_vs_worst")


@dataclass(frozen=True)
class Pair:
    chosen: Mapping
    rejected: Mapping


@dataclass
class PairCounts:
    """What became of each prompt: a pair, or why not."""

    prompts: int = 0
    pairs: int = 0
    single: int = 0  # fewer than two scored responses
    no_lower: int = 0  # every other scored response ties the best score or repeats the best text
    unscored_rows: int = 0


def preference_pairs(rows: Iterable[Mapping], rule: str, seed: int | str, group: str = "prompt_id",
                     score: str = "score", text: str = "response",
                     order: Sequence[str] = ("checkpoint", "sample")) -> tuple[list[Pair], PairCounts]:
    """One pair per prompt that has a response scored below its best one; pairs sorted by prompt."""
    if rule not in PAIR_RULES:
        raise ValueError(f"unknown pair rule {rule!r}; choose one of {', '.join(PAIR_RULES)}")
    counts = PairCounts()
    groups: dict[Hashable, list[Mapping]] = defaultdict(list)
    for row in rows:
        bucket = groups[row[group]]  # made even for an unscored row: its prompt counts as one
        if math.isnan(row[score]):
            counts.unscored_rows += 1
        else:
            bucket.append(row)
    counts.prompts = len(groups)
    pairs = []
    for key in sorted(groups, key=str):
        scored = groups[key]
        if len(scored) < 2:
            counts.single += 1
            continue
        best = best_of_n(scored, group, score, order)[0]
        below = sorted((r for r in scored if r[score] < best[score] and r[text].strip() != best[text].strip()),
                       key=lambda r: tuple(r[o] for o in order))
        if not below:
            counts.no_lower += 1
            continue
        if rule == "best_vs_worst":
            rejected = min(below, key=lambda r: r[score])  # min keeps the first of equal scores
        else:
            rejected = random.Random(f"{seed}:{key}").choice(below)
        pairs.append(Pair(best, rejected))
    counts.pairs = len(pairs)
    return pairs, counts
