"""Numbers of `alma eval`: mean judge score, pairwise win rate (ties half), bootstrap confidence intervals.

Each model answers the same held-out prompts, so models are compared prompt by prompt: on a prompt, the
model whose answer the judge scored higher wins (1), the other loses (0), equal scores tie (0.5). A prompt
where either side has no score (a sampled judgment that parsed nothing) counts 0.5 as well, reported as
`unscored`, so that a model cannot gain by making the judge fail. The win rate is then the mean of those
outcomes, and the mean score the mean of the per-prompt scores: both are means over prompts, and one
percentile bootstrap over prompts gives the interval of either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def mean(values: Sequence[float]) -> float:
    """The mean of the values that are not NaN; NaN when none is."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


@dataclass(frozen=True)
class WinRate:
    """Model A against model B over the same prompts."""

    rate: float  # (wins + (ties + unscored) / 2) / prompts; NaN with no prompts
    wins: int
    losses: int
    ties: int
    unscored: int
    prompts: int


def outcomes(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Per prompt, A's result against B: 1 a win, 0 a loss, 0.5 a tie or a missing score."""
    if len(a) != len(b):
        raise ValueError(f"paired scores differ in length: {len(a)} vs {len(b)}")
    return [0.5 if math.isnan(x) or math.isnan(y) or x == y else float(x > y) for x, y in zip(a, b)]


def win_rate(a: Sequence[float], b: Sequence[float]) -> WinRate:
    results = outcomes(a, b)
    unscored = sum(1 for x, y in zip(a, b) if math.isnan(x) or math.isnan(y))
    ties = sum(1 for r in results if r == 0.5) - unscored
    return WinRate(rate=sum(results) / len(results) if results else math.nan,
                   wins=results.count(1.0), losses=results.count(0.0), ties=ties, unscored=unscored,
                   prompts=len(results))


def bootstrap_ci(values: Sequence[float], resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (NaN left out), resampling with replacement.

    Seeded, so a report can be recomputed exactly; (NaN, NaN) when no value is left. Resampling the
    per-prompt values keeps each prompt's answers together, which is what makes the comparison paired.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    kept = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if kept.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = kept[rng.integers(0, kept.size, size=(resamples, kept.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)
