"""The Ray plumbing against a real local Ray with the tiny model: deployments answer, Data streams through
them with exact counts, checkpoints are multiplexed, and every listener is on loopback."""

import math
import os
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest

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


def _descendants(pid: int) -> set[int]:
    out = {pid}
    for _ in range(6):
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                if ppid in out:
                    out.add(int(p))
    return out


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_every_listener_of_our_ray_is_on_loopback(cluster):
    ours = _descendants(os.getpid())
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
    checked = 0
    for line in lines:
        pids = {int(f.split("=")[1]) for word in line.split() for f in word.split(",") if f.startswith("pid=")}
        if pids & ours:
            addr = line.split()[3]
            checked += 1
            assert addr.startswith(("127.", "[::ffff:127.", "[::1]")), line
    assert checked >= 3
