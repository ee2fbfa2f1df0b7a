"""Near-duplicate detection that scales: MinHash signatures of word shingles, banded LSH, no pairwise pass.

Exact de-duplication (core.prompts.normalize) misses the near-copies a base model writes all the time
("Write a poem about the sea" / "Write a short poem about the sea"). Comparing every prompt with every
other is quadratic; MinHash + LSH finds candidate pairs in time linear in the pool:

- A prompt's shingles are its runs of `shingle` consecutive normalised words (a shorter prompt is one
  shingle). Two prompts' Jaccard similarity J is |A & B| / |A | B| over these sets.
- A MinHash signature holds, for `perms` random hash functions, the smallest hash over the shingles.
  Two signatures agree in one position with probability J, so the share of agreeing positions
  estimates J.
- LSH cuts the signature into `bands` bands of `rows` values; prompts sharing any whole band are
  candidates (probability 1 - (1 - J^rows)^bands, an S-curve whose steep part sits at the threshold).
  Only candidates are compared, by their estimated J.

The index is streaming and order-dependent like exact de-duplication: a prompt is checked against the
prompts kept before it, and the first of a near-duplicate group is the one kept.
Pure numpy; no Ray, no torch.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from alma.core.prompts import normalize

# Universal hashing h(x) = (a*x + b) mod P over 32-bit shingle hashes: with P < 2^32 every product
# a*x + b stays below 2^64, so uint64 arithmetic is exact.
_PRIME = np.uint64(4_294_967_291)  # the largest prime below 2^32


def shingles(text: str, size: int) -> set[str]:
    """The runs of `size` consecutive normalised words; a prompt shorter than that is one shingle."""
    words = normalize(text).split()
    if len(words) <= size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@lru_cache(maxsize=None)
def lsh_bands(threshold: float, perms: int) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= perms whose S-curve best separates pairs around `threshold`.

    Minimises the area of false positives (J < threshold yet candidates) plus false negatives
    (J >= threshold yet never compared), as datasketch does, by numerical integration.
    """
    grid = np.linspace(0.0, 1.0, 201)
    step = grid[1] - grid[0]
    below, above = grid < threshold, grid >= threshold
    best, best_error = (1, perms), float("inf")
    for bands in range(1, perms + 1):
        for rows in range(1, perms // bands + 1):
            hit = 1.0 - (1.0 - grid**rows) ** bands
            error = step * (hit[below].sum() + (1.0 - hit[above]).sum())
            if error < best_error - 1e-12:
                best, best_error = (bands, rows), error
    return best


@dataclass
class MinHasher:
    """`perms` seeded hash functions; the same seed gives the same signatures in every process."""

    perms: int = 128
    shingle: int = 2
    seed: int = 0
    _a: np.ndarray = field(init=False, repr=False)
    _b: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self._a = rng.integers(1, int(_PRIME), size=self.perms, dtype=np.uint64)
        self._b = rng.integers(0, int(_PRIME), size=self.perms, dtype=np.uint64)

    def signatures(self, texts: Sequence[str], chunk: int = 1024) -> np.ndarray:
        """(len(texts), perms) uint32 signatures, vectorised over `chunk` texts at a time.

        A text with no words gets the all-max signature (it matches only other empty texts).
        """
        out = np.full((len(texts), self.perms), np.iinfo(np.uint32).max, dtype=np.uint32)
        for first in range(0, len(texts), chunk):
            hashes: list[int] = []
            starts: list[int] = []
            rows: list[int] = []
            for i, text in enumerate(texts[first : first + chunk], start=first):
                found = shingles(text, self.shingle)
                if found:
                    starts.append(len(hashes))
                    rows.append(i)
                    hashes.extend(zlib.crc32(s.encode()) for s in found)
            if hashes:
                h = np.asarray(hashes, dtype=np.uint64) % _PRIME
                values = (h[:, None] * self._a + self._b) % _PRIME
                out[rows] = np.minimum.reduceat(values, starts, axis=0)
        return out


@dataclass
class NearDuplicateIndex:
    """LSH index of the signatures kept so far; `check_and_add` drops a near-copy or remembers a new one."""

    threshold: float = 0.7
    perms: int = 128
    shingle: int = 2
    seed: int = 0
    hasher: MinHasher = field(init=False, repr=False)
    bands: int = field(init=False)
    rows: int = field(init=False)
    _tables: list[dict[bytes, list[int]]] = field(init=False, repr=False)
    _kept: list[np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        self.hasher = MinHasher(self.perms, self.shingle, self.seed)
        self.bands, self.rows = lsh_bands(self.threshold, self.perms)
        self._tables = [{} for _ in range(self.bands)]
        self._kept = []

    def __len__(self) -> int:
        return len(self._kept)

    def _keys(self, signature: np.ndarray) -> list[bytes]:
        return [signature[b * self.rows : (b + 1) * self.rows].tobytes() for b in range(self.bands)]

    def match(self, signature: np.ndarray) -> int | None:
        """Index of a kept prompt whose estimated Jaccard with `signature` reaches the threshold."""
        seen: set[int] = set()
        for table, key in zip(self._tables, self._keys(signature)):
            for other in table.get(key, ()):
                if other not in seen:
                    seen.add(other)
                    if float(np.mean(self._kept[other] == signature)) >= self.threshold:
                        return other
        return None

    def add(self, signature: np.ndarray) -> int:
        index = len(self._kept)
        self._kept.append(signature)
        for table, key in zip(self._tables, self._keys(signature)):
            table.setdefault(key, []).append(index)
        return index

    def check_and_add(self, text: str) -> bool:
        """True when `text` nearly copies a kept prompt (then it is not added); else it is added."""
        signature = self.hasher.signatures([text])[0]
        if self.match(signature) is not None:
            return True
        self.add(signature)
        return False


def near_duplicate_mask(texts: Sequence[str], threshold: float = 0.7, perms: int = 128, shingle: int = 2,
                        seed: int = 0) -> list[bool]:
    """For each text in order, whether it nearly copies an earlier kept one (batch form of the index)."""
    index = NearDuplicateIndex(threshold, perms, shingle, seed)
    out = []
    for signature in index.hasher.signatures(texts):
        hit = index.match(signature) is not None
        if not hit:
            index.add(signature)
        out.append(hit)
    return out
