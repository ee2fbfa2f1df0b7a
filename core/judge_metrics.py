"""How well a judge agrees with people on held-out triplets: pairwise accuracy, Spearman, tie rate.

Pure Python, no numpy or scipy: the inputs are a few thousand numbers at most (the paper's judge seed is
4,000 triplets), and exact, readable arithmetic is worth more here than speed.

Pairwise accuracy is what best-of-N needs from a judge: of two responses to the same prompt that people
scored differently, does the judge put the better one first? Spearman's rank correlation says whether the
judge's scale follows the human one across prompts. The tie rate says how often the judge cannot separate
two responses that people could: an integer judge ties often, the real-valued one rarely.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Scored:
    """One held-out triplet with the judge's score (NaN when the judge gave none)."""

    prompt: Hashable
    human: float
    judge: float


@dataclass(frozen=True)
class PairwiseResult:
    """Agreement over the same-prompt pairs that people scored differently.

    A judge tie counts as half right (a coin flip would pick the better response half the time) and is
    also counted in `ties`. A pair with a missing judge score also counts half, reported in `unscored`
    rather than `ties`, so that a judge that fails to answer cannot look better by answering less.
    """

    pairs: int
    credit: float
    ties: int
    unscored: int

    @property
    def accuracy(self) -> float:
        return self.credit / self.pairs if self.pairs else math.nan

    @property
    def tie_rate(self) -> float:
        return self.ties / self.pairs if self.pairs else math.nan


def pairwise(rows: Sequence[Scored]) -> PairwiseResult:
    """Compare every two responses to the same prompt whose human scores differ."""
    by_prompt: dict[Hashable, list[Scored]] = defaultdict(list)
    for row in rows:
        by_prompt[row.prompt].append(row)
    pairs, credit, ties, unscored = 0, 0.0, 0, 0
    for group in by_prompt.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if a.human == b.human:
                    continue
                pairs += 1
                if math.isnan(a.judge) or math.isnan(b.judge):
                    unscored += 1
                    credit += 0.5
                elif a.judge == b.judge:
                    ties += 1
                    credit += 0.5
                elif (a.judge > b.judge) == (a.human > b.human):
                    credit += 1.0
    return PairwiseResult(pairs, credit, ties, unscored)


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the mean of the ranks they span (the standard for Spearman)."""
    order = sorted(range(len(values)), key=lambda index: values[index])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; NaN when either side is constant (the correlation is undefined there)."""
    if len(x) != len(y):
        raise ValueError(f"{len(x)} values against {len(y)}")
    if len(x) < 2:
        return math.nan
    mean_x, mean_y = sum(x) / len(x), sum(y) / len(y)
    dx = [v - mean_x for v in x]
    dy = [v - mean_y for v in y]
    sxx, syy = sum(d * d for d in dx), sum(d * d for d in dy)
    if sxx == 0 or syy == 0:
        return math.nan
    return sum(a * b for a, b in zip(dx, dy)) / math.sqrt(sxx * syy)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: the Pearson correlation of average ranks (exact with ties, unlike 1 - 6Σd²/...)."""
    return pearson(average_ranks(x), average_ranks(y))


@dataclass(frozen=True)
class JudgeMetrics:
    """Everything `alma judge eval` reports for one judge and one scoring mode."""

    triplets: int
    scored: int
    pairs: int
    pairwise_accuracy: float
    ties: int
    tie_rate: float
    unscored_pairs: int
    spearman: float


def judge_metrics(rows: Sequence[Scored]) -> JudgeMetrics:
    """Pairwise accuracy and tie rate over same-prompt pairs; Spearman over the triplets with a score."""
    result = pairwise(rows)
    scored = [row for row in rows if not math.isnan(row.judge)]
    return JudgeMetrics(
        triplets=len(rows),
        scored=len(scored),
        pairs=result.pairs,
        pairwise_accuracy=result.accuracy,
        ties=result.ties,
        tie_rate=result.tie_rate,
        unscored_pairs=result.unscored,
        spearman=spearman([row.human for row in scored], [row.judge for row in scored]),
    )
