"""Numbers of `alma eval`: mean judge score, pairwise win rate (ties half), bootstrap confidence intervals.

Each model answers the same held-out prompts, so models are compared prompt by prompt: on a prompt, the
model whose answer the judge scored higher wins (1), the other loses (0), equal scores tie (0.5). A prompt
where either side has no score (a sampled judgment that parsed nothing) counts 0.5 as well, reported as
`unscored`, so that a model cannot gain by making the judge fail. The win rate is then the mean of those
outcomes, and the mean score the mean of the per-prompt scores: both are means over prompts, and one
percentile bootstrap over prompts gives the interval of either.

Rule-checked compliance (core.ifeval) is a share: of prompts whose answer meets every constraint, or of
constraints met. The second is a ratio over prompts that carry 1-3 constraints each, so its interval
resamples prompts and divides the resampled sums (`bootstrap_ratio_ci`), keeping a prompt's constraints
together.

Best-of-N against a random pick (`best_and_other`): of a prompt's N answers, the one the judge scored
highest and, drawn with a seeded generator, one of the others; graded by a yardstick the judge does not
drive, the pair shows what selection alone buys.
"""

from __future__ import annotations

import math
import random
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


def bootstrap_ratio_ci(numerators: Sequence[float], denominators: Sequence[float], resamples: int = 1000,
                       confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of sum(numerators) / sum(denominators), resampling the pairs (prompts)
    with replacement; a resample whose denominators sum to 0 is left out. (NaN, NaN) with no pair."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if len(numerators) != len(denominators):
        raise ValueError(f"ratio parts differ in length: {len(numerators)} vs {len(denominators)}")
    num, den = np.asarray(numerators, dtype=np.float64), np.asarray(denominators, dtype=np.float64)
    if num.size == 0:
        return math.nan, math.nan
    picks = np.random.default_rng(seed).integers(0, num.size, size=(resamples, num.size))
    tops, bottoms = num[picks].sum(axis=1), den[picks].sum(axis=1)
    ratios = tops[bottoms > 0] / bottoms[bottoms > 0]
    if ratios.size == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return float(low), float(high)


def best_and_other(scores: Sequence[float], seed: int | str) -> tuple[int, int] | None:
    """(index of the highest score, index of a random other answer) among one prompt's answers.

    The best is the first of equal highest scores, as best-of-N picks (NaN is no score); the other is
    drawn uniformly from the remaining answers, scored or not, by a generator seeded with `seed` (say the
    run seed, the model and the prompt), so reruns agree. None with fewer than two answers or no score.
    """
    scored = [i for i, s in enumerate(scores) if not math.isnan(s)]
    if len(scores) < 2 or not scored:
        return None
    best = max(scored, key=lambda i: (scores[i], -i))
    return best, random.Random(f"best-vs-random:{seed}").choice([i for i in range(len(scores)) if i != best])


def format_interval(ci: Sequence[float | None] | None) -> str:
    """An interval for the eval tables, "[low, high]", or "-" where there is none (no pairs, no answers)."""
    if not ci or ci[0] is None or math.isnan(ci[0]):
        return "-"
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def format_number(value: float | None) -> str:
    """A rate or score for the eval tables, or "-" where it could not be measured."""
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"
