"""Splitting N responses over the checkpoint mix, and best-of-N selection."""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence, TypeVar

Row = TypeVar("Row", bound=Mapping)


def effective_mix(mix: Mapping[str, float], round_index: int, latest: str = "latest") -> dict[str, float]:
    """The mix used in a round: in round 1 there is no previous model, so 'latest' is dropped and the
    remaining checkpoints share N in their own proportions."""
    out = {name: w for name, w in mix.items() if w > 0 and not (round_index == 1 and name == latest)}
    if not out:
        raise ValueError(f"checkpoint mix {dict(mix)} leaves no checkpoint for round {round_index}")
    return out


def split_n(n: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder split of n samples by weight; exact total, ties broken by name order."""
    total = sum(weights.values())
    names = sorted(weights)
    quotas = {name: n * weights[name] / total for name in names}
    counts = {name: math.floor(q) for name, q in quotas.items()}
    rest = n - sum(counts.values())
    for name in sorted(names, key=lambda x: (-(quotas[x] - counts[x]), x))[:rest]:
        counts[name] += 1
    return {name: c for name, c in counts.items() if c > 0}


def best_of_n(rows: Iterable[Row], group: str = "prompt_id", score: str = "score",
              order: Sequence[str] = ("checkpoint", "sample")) -> list[Row]:
    """The highest-scoring row per group. Ties go to the first row in `order` so reruns agree.

    A NaN score (a sampled judgment that parsed nothing) is no score: the row is skipped, and a group
    with no scored row has no best.
    """
    best: dict[object, Row] = {}
    for row in rows:
        if math.isnan(row[score]):
            continue
        key = row[group]
        cur = best.get(key)
        if cur is None or row[score] > cur[score] or (
            row[score] == cur[score] and tuple(row[o] for o in order) < tuple(cur[o] for o in order)
        ):
            best[key] = row
    return [best[k] for k in sorted(best, key=str)]
