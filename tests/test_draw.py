"""Clustered drawing: K distinct clusters, no prompt reused across rounds or across a resume, and what
happens when fewer than K clusters have unused prompts; then the pool-clusters and draw stages on a run
folder (no Ray: the embeddings are written directly)."""

import json
import shutil
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alma.config import load_config
from alma.core.draw import draw_clustered, draw_random
from alma.core.embeddings import EMBEDDING, to_arrow
from alma.core.errors import RunStateError
from alma.core.manifest import read_manifest
from alma.jobs.pool import cluster_pool, embeddings_dir, read_clusters
from alma.jobs.rounds import draw_stage
from alma.jobs.run_context import RunContext


def _pool(clusters: int, per: int) -> tuple[list[str], list[int]]:
    ids = [f"c{c}-p{i}" for c in range(clusters) for i in range(per)]
    return ids, [c for c in range(clusters) for _ in range(per)]


def test_clustered_draw_takes_k_distinct_clusters_and_never_reuses():
    ids, clusters = _pool(clusters=10, per=4)
    of = dict(zip(ids, clusters))
    used: set[str] = set()
    for r in range(4):  # 4 rounds x 10 prompts: exactly the pool, each round one prompt per cluster
        drawn = draw_clustered(ids, clusters, used, 10, seed=r)
        assert len({of[i] for i in drawn}) == 10 and not used & set(drawn)
        used |= set(drawn)
    assert used == set(ids)
    with pytest.raises(RunStateError, match="0 unused prompts"):
        draw_clustered(ids, clusters, used, 1, seed=9)


def test_clustered_draw_is_reproducible_and_order_independent():
    ids, clusters = _pool(clusters=20, per=3)
    first = draw_clustered(ids, clusters, set(), 5, seed=3)
    assert draw_clustered(list(reversed(ids)), list(reversed(clusters)), set(), 5, seed=3) == first
    assert draw_clustered(ids, clusters, set(), 5, seed=4) != first
    picked = Counter(c for s in range(200) for c in {int(i.split("-")[0][1:]) for i in
                                                     draw_clustered(ids, clusters, set(), 5, seed=s)})
    assert len(picked) == 20 and min(picked.values()) > 20, "clusters are chosen uniformly, not by size"


def test_fewer_clusters_than_k_fill_from_the_largest_remaining():
    ids = [f"a{i}" for i in range(6)] + [f"b{i}" for i in range(3)] + ["c0"]
    clusters = [0] * 6 + [1] * 3 + [2]
    drawn = draw_clustered(ids, clusters, set(), 6, seed=0)
    counts = Counter(i[0] for i in drawn)
    # one from each of a, b, c; then a (5 left), a (4) vs b (2) -> a, then a (3) vs b (2) -> a.
    assert counts == {"a": 4, "b": 1, "c": 1}
    drawn = draw_clustered(ids, clusters, {"a0", "a1", "a2", "a3"}, 5, seed=0)
    assert Counter(i[0] for i in drawn) == {"a": 2, "b": 2, "c": 1}, "the shortfall is spread, largest first"
    with pytest.raises(ValueError):
        draw_clustered(ids, clusters[:-1], set(), 1, seed=0)


def test_random_draw_still_available():
    ids, _ = _pool(clusters=3, per=3)
    assert len(set(draw_random(ids, set(), 9, seed=0))) == 9


def _run(tmp_path, *overrides):
    cfg = load_config("tiny", overrides=[f"out_dir={tmp_path / 'run'}", "round.prompts_per_round=4",
                                         "pool.clusters=6", *overrides])
    return RunContext(cfg, cfg.run_dir())


def _fake_pool(ctx, rows=30, dim=8):
    """A committed pool and embeddings stage, as build_pool would leave them (3 separable topics)."""
    rng = np.random.default_rng(0)
    topics = ["cats and dogs", "rockets and stars", "bread and cheese"]
    text = [f"question {i} about {topics[i % 3]}" for i in range(rows)]
    ids = [f"id{i:03d}" for i in range(rows)]
    vectors = (rng.normal(size=(3, dim)) * 4)[np.arange(rows) % 3] + rng.normal(size=(rows, dim)) + 50

    def pool(w):
        pq.write_table(pa.table({"prompt_id": ids, "prompt": text, "attempt": ids}), w.path / ctx.layout.pool_file.name)
        w.rows = rows

    def embeddings(w):
        for part, chunk in enumerate(np.array_split(np.arange(rows), 2)):
            pq.write_table(pa.table({"prompt_id": [ids[i] for i in chunk], EMBEDDING: to_arrow(vectors[chunk])}),
                           w.path / f"part-{part}.parquet")
        w.rows = rows

    ctx.stage(ctx.run_dir / "pool", "prompt pool", pool)
    ctx.stage(embeddings_dir(ctx), "pool embeddings", embeddings)
    return ctx.layout.pool_file


def test_draw_stages_never_reuse_across_rounds_and_a_resume(tmp_path):
    ctx = _run(tmp_path)
    pool_file = _fake_pool(ctx)
    cluster_pool(ctx)
    info = read_manifest(ctx.run_dir / "pool-clusters").info
    assert info["clusters"] == 6 and info["nonempty"] >= 3 and read_manifest(ctx.run_dir / "pool-clusters").rows == 30
    ids, clusters = read_clusters(ctx)
    assert sorted(ids) == [f"id{i:03d}" for i in range(30)] and set(clusters) <= set(range(6))

    draws = [pq.read_table(draw_stage(ctx, r, pool_file)).to_pylist() for r in (1, 2, 3)]
    drawn = [d["prompt_id"] for draw in draws for d in draw]
    assert len(drawn) == len(set(drawn)) == 12
    for draw in draws:
        assert len({d["cluster"] for d in draw}) == 4, "K prompts from K distinct clusters"
    report = read_manifest(ctx.layout.round(1).draw).info
    assert report["method"] == "clustered" and report["unused_before"] == 30
    assert set(report["diversity"]) == {"draw", "random"}
    assert report["diversity"]["draw"]["clusters_covered"] == 4
    assert set(report["diversity"]["draw"]) == {"clusters_covered", "distinct_1", "distinct_2", "mean_cosine_distance"}
    json.dumps(report)

    # A crash before round 3's draw committed: a new driver process redraws exactly the same prompts.
    shutil.rmtree(ctx.layout.round(3).draw)
    resumed = _run(tmp_path)
    assert pq.read_table(draw_stage(resumed, 3, pool_file)).to_pylist() == draws[2]
    # A later round continues the same pool: nothing drawn before comes back.
    fourth = pq.read_table(draw_stage(resumed, 4, pool_file))["prompt_id"].to_pylist()
    assert not set(fourth) & set(drawn)


def test_random_method_and_its_report(tmp_path):
    ctx = _run(tmp_path, "round.draw=random")
    pool_file = _fake_pool(ctx)
    cluster_pool(ctx)
    draw = pq.read_table(draw_stage(ctx, 1, pool_file))
    assert draw.num_rows == 4 and draw.schema.field("cluster").type == pa.int32()
    assert read_manifest(ctx.layout.round(1).draw).info["method"] == "random"
