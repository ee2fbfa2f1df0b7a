"""`alma run --preset tiny` end to end through the real CLI, then `alma judge eval` and `alma eval` on the
finished run, and round 2 of a copy kept at a `file://` URI whose driver is interrupted mid-stream and
resumed (which also skips every committed stage), then rerun from the URI alone. Every test of the shared
tiny run is in this module."""

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from e2e_run import K, M, N, R, alma, copy_before_round, run_args
from procs import alive, descendants

from alma.core.distill import sample_label
from alma.core.manifest import MANIFEST, read_manifest
from alma.jobs.training import PHASES
from alma.core.tables import read_table

pytestmark = pytest.mark.slow


def test_outputs_hold_together(tiny_run):
    out, _, first, _ = tiny_run
    assert "mean score (best)" in first.stdout
    drawn: list[str] = []
    for r in range(1, R + 1):
        rd = out / "rounds" / f"{r:02d}"
        draw = pq.read_table(rd / "draw" / "draw.parquet").to_pylist()
        assert len(draw) == K
        drawn += [d["prompt_id"] for d in draw]
        scores = read_table(rd / "scores").to_pylist()
        per_prompt = Counter(s["prompt_id"] for s in scores)
        assert per_prompt == {d["prompt_id"]: N for d in draw}, "every drawn prompt has exactly N responses"
        assert all(math.isfinite(s["score"]) and 0 <= s["score"] <= 10 for s in scores)
        assert all(len(s["distribution"]) == 11 and abs(sum(s["distribution"]) - 1) < 1e-4 for s in scores)
        mix = Counter(s["checkpoint"] for s in scores)
        assert set(mix) == ({"sft-1", "sft-2"} if r == 1 else {"sft-1", "sft-2", "latest"})
        best = pq.read_table(rd / "best" / "best.parquet").to_pylist()
        top = {}
        for s in scores:
            top[s["prompt_id"]] = max(top.get(s["prompt_id"], -1), s["score"])
        assert {b["prompt_id"]: b["score"] for b in best} == top, "best-of-N keeps the max"
        data = pq.read_table(out / "checkpoints" / f"round-{r}" / "train_data.parquet")
        sources = Counter(data["source"].to_pylist())
        seed_rows = json.loads((out / "seeds.json").read_text())["sft"]["rows"]
        assert sources == {"seed": seed_rows, **{f"round-{k}": K for k in range(1, r + 1)}}
    assert len(drawn) == len(set(drawn)) == K * R, "no prompt is drawn twice"
    pool = pq.read_table(out / "pool" / "prompts.parquet")
    assert set(drawn) <= set(pool["prompt_id"].to_pylist())
    summary = json.loads((out / "summary.json").read_text())
    assert [r["round"] for r in summary["rounds"]] == list(range(1, R + 1))
    assert Path(summary["final_checkpoint"]).joinpath("model.safetensors").exists()
    for name in ("sft-1", "sft-2", "judge", "judge-distilled", "round-1", "round-2"):
        assert read_manifest(out / "checkpoints" / name) is not None
    from alma.core.manifest import STAGE_KINDS
    from alma.core.run_layout import committed_stages

    stages = committed_stages(out)
    assert stages and all(read_manifest(out / s["folder"]).kind in STAGE_KINDS for s in stages), \
        "every stage manifest says what it is"
    assert {(s["kind"], s["round"]) for s in stages if s["round"]} == {
        (kind, r) for r in range(1, R + 1) for kind in ("draw", "responses", "scores", "best", "train")}


def test_step_0_trains_its_three_models_at_once(tiny_run):
    """The tiny run's local Ray has 5 CPUs and each training one 1-CPU worker: sft-1, sft-2 and the judge
    overlap (jobs.initial_models.train_together), the prompt pool (the generator's replica, an embedder and
    a caller: 1.05 CPUs) is written and embedded beside them (jobs.beside), and the report's timeline shows
    both. sft-1 starts the warm worker group that every later training runs on."""
    out, _, first, _ = tiny_run
    assert "training sft-1, sft-2, judge at once" in first.stdout
    assert "prompt pool beside step 0's trainings" in first.stdout
    spans = {}
    for name in ("sft-1", "sft-2", "judge"):
        m = read_manifest(out / "checkpoints" / name)
        spans[name] = (m.committed_at - m.seconds, m.committed_at)
        startup = m.info["startup"]  # where the training's wall time went (jobs.training.PHASES)
        assert set(startup) == set(PHASES) and all(v >= 0 for v in startup.values()), startup
        assert sum(startup.values()) <= m.seconds + 1 and startup["train"] > 0
    latest_start = max(start for start, _ in spans.values())
    assert latest_start < min(end for _, end in spans.values()), f"not all three ran at once: {spans}"
    from alma.commands.report import build_report_data

    starts = {s["label"]: s["start_s"] for s in build_report_data(out)["stages"]}
    assert max(starts[f"train {n}"] for n in spans) < min(spans[n][1] - spans[n][0] for n in spans), \
        "on the plot's timeline the three bars overlap too"
    pool = read_manifest(out / "pool")
    assert pool.committed_at - pool.seconds < min(end for _, end in spans.values()), \
        f"the pool started after step 0: {pool.committed_at - pool.seconds} vs {spans}"
    # sft-1 (the first of the rounds' worker shape) was the warm group's first job: the trainings after step
    # 0, the distilled judge's first, run in its worker process with the imports done.
    pids = {name: read_manifest(out / "checkpoints" / name).info["pid"]
            for name in ("sft-1", "sft-2", "judge", "judge-distilled", "round-1", "round-2")}
    assert pids["judge-distilled"] == pids["round-1"] == pids["round-2"] == pids["sft-1"], pids
    assert len({pids["sft-1"], pids["sft-2"], pids["judge"]}) == 3, pids
    for name in ("judge-distilled", "round-1", "round-2"):
        startup = read_manifest(out / "checkpoints" / name).info["startup"]
        assert startup["imports"] < 1.0 and startup["ray_train_start"] < 5.0, (name, startup)


def test_run_ends_with_its_report_and_throughput(tiny_run):
    from test_report import check_finished_run

    check_finished_run(tiny_run[0])
    assert "report: " in tiny_run[2].stdout


def test_judge_trains_on_its_split_and_is_distilled(tiny_run):
    out = tiny_run[0]
    train = pq.read_table(out / "judge-split" / "train.parquet").to_pylist()
    heldout = pq.read_table(out / "judge-split" / "heldout.parquet").to_pylist()
    assert heldout and not {h["prompt"] for h in heldout} & {t["prompt"] for t in train}
    judge_data = pq.read_table(out / "checkpoints" / "judge" / "train_data.parquet")
    assert Counter(judge_data["source"].to_pylist()) == {"seed": len(train)}
    trained_on = "".join(json.loads(p)[0]["content"] for p in judge_data["prompt"].to_pylist())
    assert not any(h["prompt"] in trained_on for h in heldout)
    labels = read_table(out / "judge-distill").to_pylist()
    assert len(labels) == M and all(0 <= row["score"] <= 10 for row in labels)
    distilled = read_manifest(out / "checkpoints" / "judge-distilled")
    assert distilled.info["base"] == str(out / "checkpoints" / "judge") and distilled.info["sources"] == {"distill": M}
    # judge.distill_target is `sampled` (the default): each target is the label drawn from that pair's stored
    # teacher distribution with the run's seed, so it is one the teacher gave real probability to.
    seed = yaml.safe_load((out / "config.yaml").read_text())["seed"]
    targets = pq.read_table(out / "checkpoints" / "judge-distilled" / "train_data.parquet")["completion"].to_pylist()
    ordered = sorted(labels, key=lambda r: (r["prompt_id"], r["checkpoint"], r["sample"]))
    assert len(targets) == len(ordered)
    for row, target in zip(ordered, targets):
        label = sample_label(row["distribution"], f"{seed}-{row['prompt_id']}-{row['checkpoint']}-{row['sample']}")
        assert target == f"Rating: [[{label}]]" and row["distribution"][label] > 0
    for r in range(1, R + 1):
        assert read_manifest(out / "rounds" / f"{r:02d}" / "scores").info["judge"].endswith("judge-distilled")


def test_judge_eval_on_the_run(tiny_run, alma_cache, monkeypatch, capsys):
    from alma.cli import main

    out = tiny_run[0]
    monkeypatch.setenv("ALMA_CACHE", str(alma_cache))
    # In-process and one mode: the run folder's plumbing is under test here; every mode, and the CLI's
    # error handling in a subprocess, are covered by test_judge_eval.py.
    assert main(["judge", "eval", "--run", str(out), "--modes", "expected"]) == 0
    assert "pairwise acc" in capsys.readouterr().out
    report = json.loads((out / "eval" / "judge_eval.json").read_text())
    heldout = pq.read_table(out / "judge-split" / "heldout.parquet").num_rows
    assert report["heldout_triplets"] == heldout
    assert [(r["judge"], r["mode"]) for r in report["results"]] == [
        ("base", "expected"), ("judge", "expected"), ("judge-distilled", "expected")]
    assert all(r["pairs"] == heldout // 2 for r in report["results"]), "the bundled prompts have two scores each"


def test_model_eval_on_the_run(tiny_run, tmp_path, capsys):
    from alma.cli import main
    from alma.core.prompts import prompt_id

    out = tiny_run[0]
    # One held-out prompt, which round 1 drew: the report flags it (the models trained on it). The arithmetic
    # and the answers are covered by test_model_eval.py; the run folder's layout is under test here.
    drawn = pq.read_table(out / "rounds" / "01" / "draw" / "draw.parquet")["prompt"][0].as_py()
    prompts = tmp_path / "drawn.jsonl"
    prompts.write_text(json.dumps({"prompt": drawn}) + "\n")
    # The bundled rule-checked prompts, each answer cut at 12 tokens (192 by default: 3 models x 100 prompts
    # of the tiny model's word salad are most of this test's time, and prove nothing more here).
    assert main(["eval", str(out), "--prompts", str(prompts), "--no-bundled", "--set", "eval.bootstrap=50",
                 "--set", "eval.ifeval_max_new_tokens=12"]) == 0
    assert "eval prompts in draws of the run: 1" in capsys.readouterr().err
    report = json.loads((out / "eval" / "model_eval.json").read_text())
    models = ["sft-1", *(f"round-{r}" for r in range(1, R + 1))]
    assert [m["model"] for m in report["models"]] == models
    assert [m["model"] for m in report["ifeval"]["models"]] == models and len(report["ifeval"]["prompts"]) == 100
    assert report["judge"]["checkpoint"] == str(out / "checkpoints" / "judge-distilled")
    assert report["contamination"]["in_draws"] == [prompt_id(drawn)]


def _kill_tree(pid: int) -> list[int]:
    """SIGKILL `pid`, then whichever of the processes it started outlive it (by pid); returns those."""
    tree = descendants(pid) - {pid}
    os.kill(pid, signal.SIGKILL)
    time.sleep(5)  # Ray's own processes share the driver's fate; give them a moment
    left = [p for p in tree if Path(f"/proc/{p}").exists()]
    for p in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    return left


def _titled(pids: set[int], title: str) -> list[int]:
    """Those of `pids` whose process title (Ray sets it to the actor's class) holds `title`."""
    found = []
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if title in f.read().decode(errors="replace"):
                found.append(pid)
    return found


def _rows(folder: Path, columns: list[str]) -> list[tuple]:
    table = read_table(folder)
    return sorted(zip(*(table[c].to_pylist() for c in columns)))


def test_a_run_on_a_uri_interrupted_mid_stream_resumes_to_the_same_rows_and_from_the_uri_alone(tiny_run,
                                                                                                alma_cache):
    """The shared run up to round 2 in a bucket (`file://`), as a driver killed there leaves it. A driver on
    a fresh working copy fetches every committed stage and starts round 2; Ctrl-C (SIGINT) while its
    responses stream ends it within a few seconds (core.interrupts' grace time, 5 s) with none of its
    processes left. `alma run --resume URI` then recomputes round 2 to the same (prompt, response) rows as
    the uninterrupted run (every sample is seeded from the run seed and the prompt), none twice, none
    missing, uploading what it commits and touching no committed stage; and with the working copy gone, a
    rerun from the URI alone (its config comes from there too) fetches everything and computes nothing."""
    out, _, _, root = tiny_run
    work = Path(tempfile.mkdtemp(prefix="alma-k-"))  # short: Ray keeps its files inside the working copy
    bucket, scratch = work / "bucket", work / "s"
    uri, env = f"file://{bucket}/run", {"ALMA_SCRATCH": str(scratch)}
    driver = None
    try:
        run = copy_before_round(out, bucket / "run", 2)
        committed = {p: p.stat().st_mtime for p in run.rglob(MANIFEST)}
        full_env = {**os.environ, "ALMA_CACHE": str(alma_cache), "HF_HUB_OFFLINE": "1", **env}
        full_env.pop("RAY_ADDRESS", None)
        driver = subprocess.Popen([sys.executable, "-m", "alma.cli", *run_args(uri)], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=full_env, cwd=root)
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(driver.stdout), daemon=True).start()
        deadline = time.time() + 600
        while not any("round 2 responses: started" in line for line in lines):
            assert driver.poll() is None and time.time() < deadline, "".join(lines)[-3000:]
            time.sleep(0.2)
        assert "".join(lines).count(f"fetched from {uri}") == len(committed), "a fresh copy fetches every stage"
        # Mid-stream: Ray Data's caller actor is up and sending requests to the generator.
        while not _titled(descendants(driver.pid), "MapBatches(GenerateCaller)") and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        [copy] = [p for p in scratch.iterdir() if p.name.startswith("run-")]  # the working copy
        temp = list((copy / "rounds" / "02").glob(".tmp-responses-*"))
        partial = [p for folder in temp for p in folder.rglob("*") if p.is_file()]
        tree = descendants(driver.pid) - {driver.pid}
        interrupted = time.time()
        driver.send_signal(signal.SIGINT)
        assert driver.wait(timeout=60) == 130
        took = time.time() - interrupted
        time.sleep(1)
        left = [p for p in tree if alive(p)]
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        assert not (run / "rounds" / "02" / "responses").exists(), "stopped before the responses were committed"
        print(f"driver interrupted in round 2 responses, gone {took:.1f} s later (temp folder: {len(temp)}, "
              f"{len(partial)} result files in it; {len(left)} of its {len(tree)} processes outlived it)")
        assert took < 15 and not left, (took, left)
        assert "alma: interrupted" in "".join(lines)
        driver = None

        resumed = alma(["run", "--resume", uri], alma_cache, root, env=env)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        print("recomputed: " + ", ".join(line.split("] ", 1)[1].removesuffix(": started")
                                         for line in resumed.stdout.splitlines() if line.endswith(": started")))
        assert resumed.stdout.count("already committed") == len(committed) + 1, "all but round 2 draw's"
        assert {p: p.stat().st_mtime for p in committed} == committed, "committed stages are not touched"
        assert "round 2 responses: started" in resumed.stdout
        assert not list((copy / "rounds" / "02").glob(".tmp-*")), "the killed attempt's partial work is gone"
        new, old = run / "rounds" / "02", out / "rounds" / "02"  # what was uploaded, against the first run
        keys = ["prompt_id", "checkpoint", "sample"]
        responses = _rows(new / "responses", [*keys, "prompt", "response"])
        assert len(responses) == K * N and len({r[:3] for r in responses}) == K * N, "none missing, none twice"
        assert responses == _rows(old / "responses", [*keys, "prompt", "response"])
        assert _rows(new / "scores", keys) == _rows(old / "scores", keys)
        assert [s for *_, s in _rows(new / "scores", [*keys, "score"])] == pytest.approx(
            [s for *_, s in _rows(old / "scores", [*keys, "score"])], abs=1e-4)
        assert not (new / "responses" / "errors.parquet").exists() and not (new / "scores" / "errors.parquet").exists()
        trained = pq.read_table(run / "checkpoints" / "round-2" / "train_data.parquet")
        assert Counter(trained["source"].to_pylist()) == Counter(
            pq.read_table(out / "checkpoints" / "round-2" / "train_data.parquet")["source"].to_pylist())
        summary = json.loads((run / "summary.json").read_text())
        assert [r["responses"] for r in summary["rounds"]] == [K * N, K * N] and summary["errors"] == {}
        assert (run / "config.yaml").is_file()

        # On a fresh machine the run is resumed by its URI alone: its config comes from there too.
        shutil.rmtree(scratch)
        all_stages = sorted(p.parent.relative_to(run).as_posix() for p in run.rglob(MANIFEST))
        assert {"checkpoints/sft-1", "checkpoints/judge", "checkpoints/round-2", "rounds/02/best"} <= set(all_stages)
        again = alma(["run", "--resume", uri], alma_cache, root, env=env)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert again.stdout.count(f"fetched from {uri}") == len(all_stages)
        assert "committed in" not in again.stdout  # nothing rebuilt: every stage came from the URI
    finally:
        if driver is not None and driver.poll() is None:
            _kill_tree(driver.pid)
        shutil.rmtree(work, ignore_errors=True)


def test_changed_config_is_refused(tiny_run, alma_cache):
    out, args, _, root = tiny_run
    res = alma([*args, "--set", "round.sampling.temperature=0.5"], alma_cache, root)
    assert res.returncode == 2 and "another config" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_pool_is_filtered_embedded_clustered_and_drawn_by_cluster(tiny_run):
    import pyarrow as pa

    out = tiny_run[0]
    pool = read_manifest(out / "pool")
    funnel = pool.info["funnel"]
    assert funnel["attempts"] == 48 and funnel["after_near_duplicate"] == pool.rows
    embeddings = read_table(out / "pool-embeddings")
    assert embeddings.schema.field("embedding").type == pa.list_(pa.float32(), 256)
    assert embeddings.num_rows == pool.rows
    clusters = pq.read_table(out / "pool-clusters" / "clusters.parquet")
    assert sorted(clusters["prompt_id"].to_pylist()) == sorted(embeddings["prompt_id"].to_pylist())
    assert read_manifest(out / "pool-clusters").info["clusters"] == 8
    summary = json.loads((out / "summary.json").read_text())
    for r in range(1, R + 1):
        draw = pq.read_table(out / "rounds" / f"{r:02d}" / "draw" / "draw.parquet").to_pylist()
        assert len({d["cluster"] for d in draw}) == K, "one prompt from each of K distinct clusters"
        diversity = summary["rounds"][r - 1]["diversity"]
        assert diversity["draw"]["clusters_covered"] == K and 0 < diversity["random"]["clusters_covered"] <= K
