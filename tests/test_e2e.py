"""`alma run --preset tiny` end to end through the real CLI, then the same command again (resume)."""

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from alma.core.manifest import read_manifest
from alma.jobs.streaming import read_table

pytestmark = pytest.mark.slow
N, K, R = 6, 4, 2


def alma(args, cache, cwd):
    env = {**os.environ, "ALMA_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "alma.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, alma_cache, tiny_model):
    root = tmp_path_factory.mktemp("e2e")
    out = root / "run"
    args = ["run", "--preset", "tiny", "--out", str(out), "--set", f"rounds={R}",
            "--set", f"round.prompts_per_round={K}", "--set", f"round.responses_per_prompt={N}"]
    first = alma(args, alma_cache, root)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return out, args, first, root


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
    for name in ("sft-1", "sft-2", "judge", "round-1", "round-2"):
        assert read_manifest(out / "checkpoints" / name) is not None


def test_rerun_skips_committed_stages(tiny_run, alma_cache):
    out, args, _, root = tiny_run
    before = {p: p.stat().st_mtime for p in out.rglob("manifest.json")}
    again = alma(args, alma_cache, root)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already committed") == len(before)
    assert {p: p.stat().st_mtime for p in out.rglob("manifest.json")} == before


def test_changed_config_is_refused(tiny_run, alma_cache):
    out, args, _, root = tiny_run
    res = alma([*args, "--set", "round.sampling.temperature=0.5"], alma_cache, root)
    assert res.returncode == 2 and "another config" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
