"""MinHash + LSH near-duplicate detection: shingles, signature estimates, the band choice, recall at scale."""

import random

import numpy as np
import pytest

from alma.core.near_dup import MinHasher, NearDuplicateIndex, jaccard, lsh_bands, near_duplicate_mask, shingles


def test_shingles_are_normalised_word_runs():
    assert shingles("Tell me, a JOKE!", 2) == {"tell me", "me a", "a joke"}
    assert shingles("Hello there", 3) == {"hello there"}, "a short prompt is one shingle"
    assert shingles("  !! ", 2) == set()


def test_signature_agreement_estimates_jaccard():
    hasher = MinHasher(perms=256, shingle=1, seed=3)
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(400)]
    for _ in range(20):
        a = rng.sample(vocab, 40)
        b = a[: rng.randrange(5, 40)] + rng.sample(vocab, 20)
        sa, sb = hasher.signatures([" ".join(a), " ".join(b)])
        assert abs(float(np.mean(sa == sb)) - jaccard(set(a), set(b))) < 0.12
    assert (hasher.signatures(["one two three"]) == MinHasher(256, 1, 3).signatures(["one two three"])).all()
    assert hasher.signatures(["x y", ""]).dtype == np.uint32


def test_band_choice_puts_the_s_curve_at_the_threshold():
    for threshold in (0.5, 0.7, 0.9):
        bands, rows = lsh_bands(threshold, 128)
        assert bands * rows <= 128
        above, below = threshold + 0.15, threshold - 0.25
        assert 1 - (1 - above**rows) ** bands > 0.9 and 1 - (1 - below**rows) ** bands < 0.25
    with pytest.raises(ValueError):
        NearDuplicateIndex(threshold=0)


def test_recall_and_precision_on_planted_near_duplicates():
    rng = random.Random(1)
    vocab = [f"word{i}" for i in range(3000)]
    originals = [" ".join(rng.choices(vocab, k=rng.randrange(20, 30))) for _ in range(2000)]
    copies = []
    for text in rng.sample(originals, 200):
        words = text.split()
        # One word inserted into n words: bigram Jaccard (n - 2) / (n + 1) >= 0.86, well above 0.7.
        words.insert(rng.randrange(1, len(words)), "please")
        copies.append(" ".join(words))
    mask = near_duplicate_mask(originals + copies, threshold=0.7)
    assert not any(mask[:2000]), "independent prompts are never merged"
    assert sum(mask[2000:]) >= 198, "planted near-copies are found"


def test_first_of_a_group_is_kept():
    texts = ["write a long poem about the sea and its waves", "write a long poem about the sea and its big waves",
             "write a long poem about the sea and its waves"]
    assert near_duplicate_mask(texts) == [False, True, True]
    assert near_duplicate_mask(list(reversed(texts))) == [False, True, True]
