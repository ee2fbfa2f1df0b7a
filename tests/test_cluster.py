"""The Ray plumbing against a real local Ray with the tiny model: deployments answer, Data streams through
them with exact counts, checkpoints are multiplexed, Data actors embed the pool, and every listener is on
loopback."""

import math
import os
import shutil
import signal
import threading
import time

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
        reply = cluster["gen"].options(multiplexed_model_id=str(model)).generate.remote(chat, 3, sampling).result()
        assert len(reply["node"]) == 56  # the replica's Ray node id, for the stage's record of where it ran
        out = reply["completions"]
        assert len(out) == 2 and all(len(samples) == 3 for samples in out)
        assert all(isinstance(s, str) for samples in out for s in samples)
    text = cluster["gen"].options(multiplexed_model_id=str(cluster["models"][0])).generate.remote(
        ["Request: write"], 1, sampling).result()["completions"]
    assert len(text) == 1 and len(text[0]) == 1


def test_judge_returns_expected_score_and_distribution(cluster):
    from alma.core.scoring import expected_score

    res = cluster["judge"].score.remote([{"prompt": "2+2?", "response": "4"},
                                         {"prompt": "Capital of France?", "response": "Paris."}]).result()
    assert len(res) == 2
    for r in res:
        assert len(r["node"]) == 56
        assert len(r["distribution"]) == 11 and abs(sum(r["distribution"]) - 1) < 1e-5
        assert math.isfinite(r["score"]) and r["score"] == pytest.approx(expected_score(r["distribution"]))


def test_data_streams_through_deployments_with_exact_counts(cluster, monkeypatch):
    from alma.actors.callers import GenerateCaller, JudgeCaller
    from alma.core.tables import read_table
    from alma.jobs.streaming import stream_through

    cfg, (m1, m2) = cluster["cfg"], cluster["models"]
    rows = [{"prompt_id": f"p{i}", "prompt": f"Question {i}?", "mode": "chat", "checkpoint": name,
             "checkpoint_path": str(path), "n": n, "seed": f"s{i}"}
            for i in range(5) for name, path, n in (("sft-1", m1, 2), ("sft-2", m2, 1))]
    out = cluster["run"] / "responses"
    streamed = stream_through(rows, GenerateCaller, cfg, out, {"sampling": {"max_new_tokens": 6}})
    table = read_table(out)
    assert streamed.rows == table.num_rows == 15 and streamed.errors == 0
    assert set(table.column_names) == {"prompt_id", "prompt", "checkpoint", "sample", "response"}
    pairs = sorted(zip(table["prompt_id"].to_pylist(), table["checkpoint"].to_pylist(), table["sample"].to_pylist()))
    assert pairs == sorted((f"p{i}", c, s) for i in range(5) for c, k in (("sft-1", 2), ("sft-2", 1))
                           for s in range(k))
    scored = cluster["run"] / "scores"
    assert stream_through(out, JudgeCaller, cfg, scored).rows == 15
    scores = read_table(scored)
    assert {"score", "distribution"} <= set(scores.column_names)
    assert all(0 <= s <= 10 for s in scores["score"].to_pylist())
    # Past jobs.streaming.INLINE_ROWS, Ray Data's read tasks read the stage's files, here by their URI (a run
    # folder at one), as tasks on any node of a cluster must.
    monkeypatch.setattr("alma.jobs.streaming.INLINE_ROWS", 0)
    read_back = cluster["run"] / "scores-read"
    assert stream_through(out, JudgeCaller, cfg, read_back, location=f"file://{out}").rows == 15
    assert sorted(read_table(read_back)["score"].to_pylist()) == pytest.approx(sorted(scores["score"].to_pylist()), abs=1e-4)


def test_concurrent_calls_per_actor_give_the_same_rows(cluster):
    """Two calls in flight per caller actor (threads) change when calls run, not what they return: a call's
    rows and seed are fixed before the actor sees it."""
    from alma.actors.callers import GenerateCaller
    from alma.core.tables import read_table
    from alma.jobs.streaming import stream_through

    (m1, m2) = cluster["models"]
    rows = [{"prompt_id": f"p{i}", "prompt": f"Question {i}?", "mode": "chat", "checkpoint": name,
             "checkpoint_path": str(path), "n": 2, "seed": f"s{i}"}
            for i in range(6) for name, path in (("sft-1", m1), ("sft-2", m2))]
    tables = []
    for calls in (1, 2):
        cfg = cluster["cfg"].model_copy(deep=True)
        cfg.serve.request_batch, cfg.serve.calls_per_actor = 2, calls
        out = cluster["run"] / f"calls-{calls}"
        assert stream_through(rows, GenerateCaller, cfg, out, {"sampling": {"max_new_tokens": 6}}).rows == 24
        tables.append(sorted(zip(*(read_table(out)[c].to_pylist()
                                   for c in ("prompt_id", "checkpoint", "sample", "response")))))
    assert tables[0] == tables[1]


def test_pool_is_embedded_by_data_actors_and_clustered(cluster, tiny_model):
    """Ray Data actors holding the base model write a fixed_size_list<float32> column equal to the engine's
    own output; the clusters stage then gives every prompt a cluster."""
    import numpy as np
    import pyarrow as pa

    from alma.core.embeddings import EMBEDDING, to_numpy
    from alma.engines.transformers_engine import TransformersEngine
    from alma.jobs.pool import cluster_pool, embed_pool, read_clusters
    from alma.jobs.run_context import RunContext
    from alma.core.tables import read_table

    cfg = cluster["cfg"].model_copy(update={"out_dir": str(cluster["run"] / "pool-run")})
    cfg.pool.embed_batch, cfg.pool.clusters = 4, 3
    ctx = RunContext(cfg, cfg.run_dir())
    texts = [f"Question number {i}: how do {w} work?" for i, w in enumerate(
        ["magnets", "tides", "vaccines", "bridges", "clocks", "lungs", "kites", "ovens", "banks", "votes"])]
    pool = ctx.layout.pool_file
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


def _our_processes(title: str) -> list[int]:
    """Processes under this test's own Ray whose title (Ray sets it to the actor's class) holds `title`."""
    found = []
    for pid in sorted(descendants(os.getpid()) - {os.getpid()}):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if title in f.read().decode(errors="replace"):
                    found.append(pid)
        except OSError:
            continue
    return found


def _kill_when(ready, title: str, killed: list, timeout: float = 120) -> threading.Thread:
    """In the background: once `ready()` holds, SIGKILL the one process titled `title` (by pid), once."""
    def run():
        deadline = time.time() + timeout
        while time.time() < deadline and not ready():
            time.sleep(0.05)
        pids = _our_processes(title)
        if len(pids) == 1:
            os.kill(pids[0], signal.SIGKILL)
            killed.append((pids[0], time.time()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_replica_killed_mid_stream_loses_no_row(cluster):
    """SIGKILL the generator's one replica while Ray Data streams requests through it: the call in flight
    fails, is retried with backoff while Serve replaces the replica, and every row arrives exactly once."""
    from alma.actors.callers import GenerateCaller
    from alma.core.tables import ERRORS_FILE, read_table
    from alma.jobs.streaming import stream_through

    cfg = cluster["cfg"].model_copy(deep=True)
    cfg.serve.request_batch, cfg.serve.retry_backoff_s = 4, 0.5
    rows = [{"prompt_id": f"p{i}", "prompt": f"Tell me about topic {i}.", "mode": "chat", "checkpoint": "sft-1",
             "checkpoint_path": str(cluster["models"][0]), "n": 2, "seed": f"k{i}"} for i in range(24)]
    out = cluster["run"] / "killed-replica"
    killed: list = []
    # Mid-stream: the first batch's results are written, the next calls are under way.
    killer = _kill_when(lambda: any((out / "_streamed").glob("*.parquet")), "ServeReplica:alma-generator:", killed)
    started = time.time()
    streamed = stream_through(rows, GenerateCaller, cfg, out, {"sampling": {"max_new_tokens": 64}})
    killer.join()
    assert killed, "the replica was killed while the stream ran"
    print(f"replica {killed[0][0]} killed {killed[0][1] - started:.1f}s into a {time.time() - started:.1f}s stream; "
          f"{streamed.retried_rows} result rows came from retried calls")
    assert (streamed.rows, streamed.errors) == (48, 0) and not (out / ERRORS_FILE).exists()
    assert streamed.retried_rows > 0, "a call in flight failed and was retried"
    table = read_table(out)
    keys = sorted(zip(table["prompt_id"].to_pylist(), table["sample"].to_pylist()))
    assert keys == sorted((f"p{i}", s) for i in range(24) for s in range(2)), "every row exactly once"
    assert killed[0][0] not in _our_processes("ServeReplica:alma-generator:"), "Serve replaced the replica"


def test_training_restarts_from_its_last_checkpoint_after_a_worker_dies(cluster, tiny_model):
    """SIGKILL the Ray Train worker once a checkpoint is registered: FailureConfig starts a new worker,
    which continues from that checkpoint and finishes the same number of steps."""
    from alma.config import TrainConfig
    from alma.core.seeds import bundled, load_sft
    from alma.jobs.initial_models import sft_rows
    from alma.jobs.training import training_table, train_sft

    run = cluster["run"]
    data = run / "restart-data.parquet"
    pq.write_table(training_table(sft_rows(load_sft(bundled("sft.jsonl")))), data)
    train = TrainConfig(epochs=1, max_steps=12, batch_size=2, max_length=96, learning_rate=1e-3,
                        checkpoint_steps=2, max_failures=1)
    storage, out = run / "ray_train", run / "restarted"
    out.mkdir()
    killed: list = []
    # Ray Train writes this file when it has registered a reported checkpoint (the one a restart gets).
    registered = storage / "restart" / "checkpoint_manager_snapshot.json"
    killer = _kill_when(registered.exists, "RayTrainWorker", killed, 300)
    metrics = train_sft("restart", tiny_model, data, out, train, seed=0, storage=storage)
    killer.join()
    assert killed, "the worker was killed during training"
    print(f"train worker {killed[0][0]} killed; resumed from step {metrics['resumed_from_step']}")
    assert metrics["steps"] == 12 and metrics["resumed_from_step"] in range(2, 12, 2)
    assert (out / "model.safetensors").is_file()
    assert not (storage / "restart").exists(), "the restart checkpoints go once the training is done"


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_every_listener_of_our_ray_is_on_loopback(cluster):
    addresses = listeners(descendants(os.getpid()))
    assert len(addresses) >= 3, addresses
    assert all(on_loopback(a) for a in addresses), addresses


def _warm_data(run, name: str, rows: int | None = None):
    from alma.core.seeds import bundled, load_sft
    from alma.jobs.initial_models import sft_rows
    from alma.jobs.training import training_table

    data = run / f"{name}.parquet"
    pq.write_table(training_table(sft_rows(load_sft(bundled("sft.jsonl")), rows)), data)
    return data


def test_a_warm_worker_group_trains_one_job_after_another(cluster, tiny_model):
    """jobs.warm_training: three trainings in one worker process (its imports kept), a failing one in
    between reported as that stage's error, and the group still serving the next."""
    from alma.config import TrainConfig
    from alma.core.errors import StageFailed
    from alma.jobs.training import train_sft
    from alma.jobs.warm_training import current_trainers, warm_trainers

    run = cluster["run"]
    data = _warm_data(run, "warm-data")
    train = TrainConfig(epochs=1, max_steps=2, batch_size=2, max_length=96, learning_rate=1e-3)
    storage = run / "ray_train"
    with warm_trainers(storage) as warm:
        assert current_trainers() is warm
        first = train_sft("warm-1", tiny_model, data, _fresh(run / "warm-1"), train, seed=0, storage=storage)
        with pytest.raises(StageFailed, match=r"^train warm-2: \w+: .*no-such-model"):
            train_sft("warm-2", run / "no-such-model", data, _fresh(run / "warm-2"), train, seed=0, storage=storage)
        third = train_sft("warm-3", tiny_model, data, _fresh(run / "warm-3"), train, seed=1, storage=storage)
    assert current_trainers() is None
    assert first["pid"] == third["pid"], "the same worker process trained both"
    assert first["steps"] == third["steps"] == 2 and third["resumed_from_step"] is None
    assert set(third["startup"]) == {"ray_train_start", "imports", "model_load", "trainer_setup", "train",
                                     "save", "ray_train_end"}
    for name in ("warm-1", "warm-3"):
        assert (run / name / "model.safetensors").is_file()
    assert not list(storage.glob("warm-*")), "the warm group's Ray Train folder goes with it"
    deadline = time.time() + 30
    while _our_processes("RayTrainWorker") and time.time() < deadline:
        time.sleep(0.2)
    assert not _our_processes("RayTrainWorker"), "its worker ended with the block"


def test_a_warm_worker_lost_mid_job_resumes_that_job_and_not_the_next(cluster, tiny_model):
    """SIGKILL the warm worker once the first job's checkpoint is registered: Ray Train restarts the group,
    which takes the same job again from that checkpoint; the next job starts from step 0 although the
    group's latest checkpoint is the first job's (each checkpoint names its job)."""
    from alma.config import TrainConfig
    from alma.jobs.training import train_sft
    from alma.jobs.warm_training import shape_key, warm_trainers

    run = cluster["run"]
    data = _warm_data(run, "warm-restart-data")
    train = TrainConfig(epochs=1, max_steps=8, batch_size=2, max_length=96, learning_rate=1e-3,
                        checkpoint_steps=2, max_failures=1)
    storage = run / "ray_train"
    registered = storage / f"warm-{shape_key(train)}" / "checkpoint_manager_snapshot.json"
    killed: list = []
    with warm_trainers(storage):
        killer = _kill_when(registered.exists, "RayTrainWorker", killed, 300)
        first = train_sft("warm-r1", tiny_model, data, _fresh(run / "warm-r1"), train, seed=0, storage=storage)
        killer.join()
        second = train_sft("warm-r2", tiny_model, data, _fresh(run / "warm-r2"), train.model_copy(
            update={"max_steps": 2}), seed=0, storage=storage)
    assert killed, "the worker was killed during the first job"
    assert first["steps"] == 8 and first["resumed_from_step"] in range(2, 8, 2)
    assert second["steps"] == 2 and second["resumed_from_step"] is None, "not resumed from the first job's"
    assert first["pid"] != killed[0][0] and second["pid"] == first["pid"], "one restarted worker, then kept"


def _fresh(folder):
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
