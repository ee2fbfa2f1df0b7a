"""The Ray plumbing against a real local Ray with the tiny model: deployments answer, Data streams through
them with exact counts, checkpoints are multiplexed, Data actors embed the pool, and every listener is on
loopback."""

import math
import os
import shutil

import pyarrow.parquet as pq
import pytest
from procs import descendants, listeners, on_loopback

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, tiny_model):
    from alma.cluster.local import start_ray, stop_ray
    from alma.cluster.serve_apps import deploy_generator, deploy_judge, start_serve
    from alma.config import load_config
    from alma.core.judge_prompt import load_rubric

    run = tmp_path_factory.mktemp("cluster")
    cfg = load_config("tiny", overrides=[f"out_dir={run}"])
    ctx = start_ray(run)
    start_serve()
    gen = deploy_generator(cfg)
    judge = deploy_judge(cfg, str(tiny_model), load_rubric(None))
    second = run / "second-checkpoint"
    shutil.copytree(tiny_model, second)
    yield {"cfg": cfg, "gen": gen, "judge": judge, "run": run, "ctx": ctx, "models": [tiny_model, second]}
    stop_ray(ctx)


def test_generator_serves_several_checkpoints(cluster):
    sampling = {"max_new_tokens": 8, "temperature": 1.0, "top_p": 1.0, "stop": [], "seed": 3}
    chat = [[{"role": "user", "content": "Name a fruit."}], [{"role": "user", "content": "Say hi."}]]
    for model in cluster["models"]:
        out = cluster["gen"].options(multiplexed_model_id=str(model)).generate.remote(chat, 3, sampling).result()
        assert len(out) == 2 and all(len(samples) == 3 for samples in out)
        assert all(isinstance(s, str) for samples in out for s in samples)
    text = cluster["gen"].options(multiplexed_model_id=str(cluster["models"][0])).generate.remote(
        ["Request: write"], 1, sampling).result()
    assert len(text) == 1 and len(text[0]) == 1


def test_judge_returns_expected_score_and_distribution(cluster):
    from alma.core.scoring import expected_score

    res = cluster["judge"].score.remote([{"prompt": "2+2?", "response": "4"},
                                         {"prompt": "Capital of France?", "response": "Paris."}]).result()
    assert len(res) == 2
    for r in res:
        assert len(r["distribution"]) == 11 and abs(sum(r["distribution"]) - 1) < 1e-5
        assert math.isfinite(r["score"]) and r["score"] == pytest.approx(expected_score(r["distribution"]))


def test_data_streams_through_deployments_with_exact_counts(cluster):
    from alma.actors.callers import GenerateCaller, JudgeCaller
    from alma.jobs.streaming import read_table, stream_through

    cfg, (m1, m2) = cluster["cfg"], cluster["models"]
    rows = [{"prompt_id": f"p{i}", "prompt": f"Question {i}?", "mode": "chat", "checkpoint": name,
             "checkpoint_path": str(path), "n": n, "seed": f"s{i}"}
            for i in range(5) for name, path, n in (("sft-1", m1, 2), ("sft-2", m2, 1))]
    out = cluster["run"] / "responses"
    count = stream_through(rows, GenerateCaller, cfg, out, {"sampling": {"max_new_tokens": 6}})
    table = read_table(out)
    assert count == table.num_rows == 15
    assert set(table.column_names) == {"prompt_id", "prompt", "checkpoint", "sample", "response"}
    pairs = sorted(zip(table["prompt_id"].to_pylist(), table["checkpoint"].to_pylist(), table["sample"].to_pylist()))
    assert pairs == sorted((f"p{i}", c, s) for i in range(5) for c, k in (("sft-1", 2), ("sft-2", 1))
                           for s in range(k))
    scored = cluster["run"] / "scores"
    assert stream_through(out, JudgeCaller, cfg, scored) == 15
    scores = read_table(scored)
    assert {"score", "distribution"} <= set(scores.column_names)
    assert all(0 <= s <= 10 for s in scores["score"].to_pylist())


def test_pool_is_embedded_by_data_actors_and_clustered(cluster, tiny_model):
    """Ray Data actors holding the base model write a fixed_size_list<float32> column equal to the engine's
    own output; the clusters stage then gives every prompt a cluster."""
    import numpy as np
    import pyarrow as pa

    from alma.core.embeddings import EMBEDDING, to_numpy
    from alma.engines.transformers_engine import TransformersEngine
    from alma.jobs.pool import POOL_FILE, cluster_pool, embed_pool, read_clusters
    from alma.jobs.run_context import RunContext
    from alma.jobs.streaming import read_table

    cfg = cluster["cfg"].model_copy(update={"out_dir": str(cluster["run"] / "pool-run")})
    cfg.pool.embed_batch, cfg.pool.clusters = 4, 3
    ctx = RunContext(cfg, cfg.run_dir())
    texts = [f"Question number {i}: how do {w} work?" for i, w in enumerate(
        ["magnets", "tides", "vaccines", "bridges", "clocks", "lungs", "kites", "ovens", "banks", "votes"])]
    pool = ctx.run_dir / "pool" / POOL_FILE
    pool.parent.mkdir(parents=True)
    pq.write_table(pa.table({"prompt_id": [f"p{i}" for i in range(10)], "prompt": texts,
                             "attempt": [f"attempt-{i}" for i in range(10)]}), pool)
    out = embed_pool(ctx, tiny_model, pool)
    table = read_table(out)
    hidden = TransformersEngine(tiny_model).model.config.hidden_size
    assert table.schema.field(EMBEDDING).type == pa.list_(pa.float32(), hidden)
    assert sorted(table["prompt_id"].to_pylist()) == [f"p{i}" for i in range(10)]
    by_id = dict(zip(table["prompt_id"].to_pylist(), to_numpy(table[EMBEDDING])))
    expected = TransformersEngine(tiny_model).embed(texts)
    assert np.allclose(np.stack([by_id[f"p{i}"] for i in range(10)]), expected, atol=1e-4)
    cluster_pool(ctx)
    ids, labels = read_clusters(ctx)
    assert sorted(ids) == sorted(by_id) and set(labels) <= {0, 1, 2}


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_every_listener_of_our_ray_is_on_loopback(cluster):
    addresses = listeners(descendants(os.getpid()))
    assert len(addresses) >= 3, addresses
    assert all(on_loopback(a) for a in addresses), addresses
