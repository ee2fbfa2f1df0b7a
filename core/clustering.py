"""k-means over the pool's embeddings, streamed in batches: scikit-learn's MiniBatchKMeans.

Why MiniBatchKMeans: scikit-learn is well kept and already a CPU wheel everywhere; `partial_fit` takes
one batch at a time, so a pool of millions of rows is clustered in a fixed amount of memory with a few
streaming passes over Parquet, and each step costs O(batch x k x dim). It does not scale in k: its
k-means++ start needs a first batch of at least k rows and costs O(batch x k). At the paper's
1M clusters use faiss (GPU k-means, same inputs and outputs) instead.

Vectors are centred on the pool's mean and scaled to unit length before clustering: a decoder's hidden
states share one large common direction, which otherwise dominates every distance; on unit vectors
Euclidean k-means groups by cosine similarity. Pure numpy + scikit-learn; no Ray, no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def unit_rows(vectors: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Rows centred on `mean` and scaled to unit length (a row equal to the mean stays zero)."""
    centred = np.asarray(vectors, dtype=np.float32) - mean
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.maximum(norms, 1e-12)


@dataclass
class KMeansModel:
    centroids: np.ndarray  # (k, dim) float32, in the centred unit-vector space
    mean: np.ndarray  # (dim,) float32: the pool mean the vectors are centred on
    rows: int  # pool rows the model was fitted on

    @property
    def k(self) -> int:
        return len(self.centroids)

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, centroids=self.centroids, mean=self.mean, rows=self.rows)

    @classmethod
    def load(cls, path: Path) -> KMeansModel:
        with np.load(path) as data:
            return cls(data["centroids"], data["mean"], int(data["rows"]))

    def assign(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid (int32) of each raw vector, and its squared distance to it."""
        x = unit_rows(vectors, self.mean)
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, without a (rows, k, dim) intermediate.
        d = (x * x).sum(1, keepdims=True) - 2.0 * x @ self.centroids.T + (self.centroids**2).sum(1)
        labels = d.argmin(1)
        return labels.astype(np.int32), np.maximum(d[np.arange(len(x)), labels], 0.0)


def fit_kmeans(batches: Callable[[], Iterable[np.ndarray]], k: int, seed: int, epochs: int) -> KMeansModel:
    """Fit k-means (k capped at the number of rows) over the raw vectors `batches()` yields.

    `batches` is called once per pass (1 for the mean, then `epochs`); every batch but the last must
    hold at least k rows (MiniBatchKMeans starts from its first batch).
    """
    from sklearn.cluster import MiniBatchKMeans

    total, rows = None, 0
    for x in batches():
        part = np.asarray(x, dtype=np.float64).sum(0)
        total = part if total is None else total + part
        rows += len(x)
    if not rows:
        raise ValueError("no vectors to cluster")
    mean = (total / rows).astype(np.float32)
    k = min(k, rows)
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1, reassignment_ratio=0.01)
    for _ in range(epochs):
        for x in batches():
            if len(x) < k and not hasattr(model, "cluster_centers_"):
                raise ValueError(f"the first batch holds {len(x)} rows, fewer than k={k}")
            model.partial_fit(unit_rows(x, mean))
    return KMeansModel(model.cluster_centers_.astype(np.float32), mean, rows)
