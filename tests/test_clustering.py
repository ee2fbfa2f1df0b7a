"""Embeddings as fixed_size_list<float32> Parquet, batched re-reads, streamed mini-batch k-means, diversity."""

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alma.core.clustering import KMeansModel, fit_kmeans, unit_rows
from alma.core.diversity import distinct_n, diversity_report, mean_pairwise_cosine_distance
from alma.core.embeddings import EMBEDDING, iter_batches, read_rows, to_arrow, to_numpy


def _blobs(centres: int, per: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim)) * 5 + 40  # a shared offset, as decoder states have
    labels = np.repeat(np.arange(centres), per)
    return (means[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def _write(folder, vectors, parts=3):
    folder.mkdir()
    ids = [f"p{i:05d}" for i in range(len(vectors))]
    for n, rows in enumerate(np.array_split(np.arange(len(vectors)), parts)):
        pq.write_table(pa.table({"prompt_id": [ids[i] for i in rows], EMBEDDING: to_arrow(vectors[rows])}),
                       folder / f"part-{n}.parquet")
    return ids


def test_embeddings_round_trip_as_fixed_size_float32_lists(tmp_path):
    vectors = np.arange(12, dtype=np.float64).reshape(4, 3)
    ids = _write(tmp_path / "emb", vectors, parts=2)
    column = pq.read_table(tmp_path / "emb")[EMBEDDING]
    assert column.type == pa.list_(pa.float32(), 3)
    back = to_numpy(column)
    assert back.dtype == np.float32 and back.shape == (4, 3) and (back == vectors).all()
    got = read_rows(tmp_path / "emb", [ids[3], ids[0], "missing"])
    assert set(got) == {ids[0], ids[3]} and (got[ids[3]] == vectors[3]).all()
    with pytest.raises(ValueError):
        to_arrow(np.zeros(3))


def test_iter_batches_rechunks_across_files(tmp_path):
    ids = _write(tmp_path / "emb", np.zeros((23, 2)), parts=4)
    sizes = [t.num_rows for t in iter_batches(sorted((tmp_path / "emb").glob("*.parquet")), 5)]
    assert sizes == [5, 5, 5, 5, 3]
    seen = [i for t in iter_batches(sorted((tmp_path / "emb").glob("*.parquet")), 5) for i in t["prompt_id"].to_pylist()]
    assert seen == ids


def test_streamed_kmeans_recovers_blobs_and_caps_k(tmp_path):
    vectors, truth = _blobs(centres=6, per=50, dim=16)
    order = np.random.default_rng(1).permutation(len(vectors))
    vectors, truth = vectors[order], truth[order]

    def batches():
        return (vectors[i : i + 64] for i in range(0, len(vectors), 64))

    model = fit_kmeans(batches, k=6, seed=0, epochs=5)
    labels, dist = model.assign(vectors)
    assert labels.dtype == np.int32 and (dist >= 0).all()
    # Each true blob lands in one cluster, and no cluster holds two blobs.
    pairs = {(int(t), int(c)) for t, c in zip(truth, labels)}
    assert len(pairs) == 6 and len({c for _, c in pairs}) == 6
    model.save(tmp_path / "k.npz")
    again = KMeansModel.load(tmp_path / "k.npz")
    assert again.rows == 300 and (again.assign(vectors)[0] == labels).all()
    assert fit_kmeans(lambda: iter([vectors[:5]]), k=50, seed=0, epochs=1).k == 5, "k is capped at the rows"
    with pytest.raises(ValueError, match="first batch"):
        fit_kmeans(batches, k=100, seed=0, epochs=1)


def test_unit_rows_centre_and_normalise():
    x = np.array([[3.0, 4.0], [1.0, 1.0], [-1.0, -2.0], [5.0, 0.0]])
    u = unit_rows(x, x.mean(0))
    assert np.allclose(np.linalg.norm(u, axis=1), 1.0)
    assert (unit_rows(x[:1], x[0]) == 0).all()


def test_distinct_n_and_pairwise_cosine_distance():
    assert distinct_n(["a b a b", "c"], 1) == 3 / 5 and distinct_n(["a b a b"], 2) == 2 / 3
    assert distinct_n([""], 2) == 0.0
    rng = np.random.default_rng(0)
    u = rng.normal(size=(30, 8))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    brute = np.mean([1 - u[i] @ u[j] for i in range(30) for j in range(30) if i != j])
    assert mean_pairwise_cosine_distance(u) == pytest.approx(brute)
    assert mean_pairwise_cosine_distance(np.stack([u[0], u[0]])) == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(mean_pairwise_cosine_distance(u[:1]))


def test_diversity_report_compares_with_random_draws():
    text = {"a": "cats purr", "b": "cats purr loudly", "c": "rockets fly", "d": "bread rises"}
    cluster = {"a": 0, "b": 0, "c": 1, "d": 2}
    unit = {"a": np.array([1.0, 0.0]), "b": np.array([1.0, 0.0]), "c": np.array([0.0, 1.0]),
            "d": np.array([-1.0, 0.0])}
    report = diversity_report(["a", "c", "d"], [["a", "b", "c"], ["a", "b", "d"]], text, cluster, unit)
    assert report["draw"]["clusters_covered"] == 3 and report["random"]["clusters_covered"] == 2
    assert report["draw"]["mean_cosine_distance"] > report["random"]["mean_cosine_distance"]
    assert report["draw"]["distinct_1"] == 1.0
