"""How diverse one round's draw is, next to a random draw of the same size from the same unused prompts.

Three measures: clusters covered (distinct k-means clusters among the drawn prompts), distinct-n (unique
word n-grams / all word n-grams of the drawn prompts, n = 1, 2) and the mean pairwise cosine distance of
their embeddings (centred on the pool mean, see core.clustering, so that the decoder's shared direction
does not make every pair look alike). Pure numpy; no Ray, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from alma.core.prompts import normalize

# Random draws averaged for the baseline: one random draw of K prompts is too noisy to compare with.
RANDOM_BASELINES = 8


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique word n-grams over all word n-grams of `texts` (0 when they hold none)."""
    grams = []
    for text in texts:
        words = normalize(text).split()
        grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def mean_pairwise_cosine_distance(unit: np.ndarray) -> float:
    """1 - the mean cosine similarity over all pairs of distinct rows of unit-length `unit` (NaN below 2).

    Uses sum_{i != j} u_i.u_j = |sum u|^2 - sum |u_i|^2: O(rows x dim), no rows x rows matrix.
    """
    if len(unit) < 2:
        return math.nan
    total = unit.sum(0, dtype=np.float64)
    pairs = float(total @ total) - float((unit.astype(np.float64) ** 2).sum())
    return 1.0 - pairs / (len(unit) * (len(unit) - 1))


def measure(ids: Sequence[str], text: Mapping[str, str], cluster: Mapping[str, int],
            unit: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The three measures of one set of prompt ids."""
    return {
        "clusters_covered": len({cluster[i] for i in ids}),
        "distinct_1": distinct_n([text[i] for i in ids], 1),
        "distinct_2": distinct_n([text[i] for i in ids], 2),
        "mean_cosine_distance": mean_pairwise_cosine_distance(np.stack([unit[i] for i in ids])),
    }


def diversity_report(drawn: Sequence[str], baselines: Sequence[Sequence[str]], text: Mapping[str, str],
                     cluster: Mapping[str, int], unit: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """The draw's measures, and the mean of each measure over the random `baselines` draws."""
    random_draws = [measure(b, text, cluster, unit) for b in baselines]
    return {
        "draw": measure(drawn, text, cluster, unit),
        "random": {key: float(np.mean([m[key] for m in random_draws])) for key in random_draws[0]},
    }
