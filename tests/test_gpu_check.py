"""benchmarks/gpu_bench.py, the GPU check's measurements, dry-run on a CPU (ALMA_GPU_CHECK_DEVICE=cpu) with the
tiny model and tiny sizes: the JSON's shape, every measured number finite and positive, each share of a limit
the rate over that limit, and every part that did not run carrying its reason. Its time budget is checked
apart, without a model: a part that outruns it is stopped, and the parts after it are skipped, with reasons."""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "gpu_bench.py"


def _bench_module():
    sys.path.insert(0, str(BENCH.parent))
    try:
        import gpu_bench
    finally:
        sys.path.remove(str(BENCH.parent))
    return gpu_bench


@pytest.mark.slow
def test_dry_run_on_cpu(tiny_model, tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "ALMA_GPU_CHECK_DEVICE": "cpu", "ALMA_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    # Limits given on the command line (a CPU has none by default), so that the shares are computed too.
    done = subprocess.run(
        [sys.executable, str(BENCH), "--model", str(tiny_model), "--batches", "4", "--max-new-tokens", "8",
         "--judgments", "4", "--steps", "4", "--train-batch", "4", "--threads", "1", "--peak-tflops", "1",
         "--bandwidth-gbs", "10", "--seconds", "300", "--json", str(out)],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith("headline: decoding ")

    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["dtype"] == "float32"
    assert report["limits"] == {"peak_flops": 1e12, "bandwidth_bytes_per_s": 1e10}
    assert report["params"] > 0 and report["weight_bytes"] >= 4 * report["params"]
    rows = {row["key"]: row for row in report["rows"]}
    assert list(rows) == ["generate_plain_b4", "judge_expected", "sft_fp32", "sft_bf16", "generate_static_b4"]
    for row in rows.values():
        if row["status"] == "measured":
            numbers = [row["rate"], row["limit"], row["share_of_limit"], *row["numbers"].values()]
            assert all(math.isfinite(v) and v > 0 for v in numbers), row
            assert row["share_of_limit"] == pytest.approx(row["rate"] / row["limit"])
        else:
            assert row["status"] == "skipped" and row["reason"], row
    # trl and datasets are installed here, so the TRL part runs; bf16 mixed precision is the GPU's part only.
    assert [key for key, row in rows.items() if row["status"] != "measured"] == ["sft_bf16"]
    assert "GPU" in rows["sft_bf16"]["reason"]
    decoding = rows["generate_plain_b4"]
    assert decoding["limit"] == pytest.approx(4 * 1e10 / report["weight_bytes"])
    assert decoding["numbers"]["tokens"] <= 4 * 8
    assert rows["sft_fp32"]["limit"] == pytest.approx(1e12 / (6 * rows["sft_fp32"]["numbers"]["params"]))
    assert "not compiled" in rows["generate_static_b4"]["note"]


def test_the_time_budget_stops_a_part_and_skips_the_rest(monkeypatch):
    bench = _bench_module()
    monkeypatch.setattr(bench, "RESERVE_S", 0.2)
    budget = bench.Budget(0.5)

    def endless():
        time.sleep(60)

    started = time.monotonic()
    stopped = bench.attempt(bench.Row("a", "a", "tok/s"), budget, endless)
    assert time.monotonic() - started < 10
    assert stopped.status == "skipped" and "ran out" in stopped.reason
    later = bench.attempt(bench.Row("b", "b", "tok/s"), budget, lambda: (1.0, None, {}, ""))
    assert later.status == "skipped" and "spent before this part" in later.reason

    def broken():
        raise ValueError("no such shape\nmore")

    failed = bench.attempt(bench.Row("c", "c", "tok/s"), bench.Budget(60), broken)
    assert failed.status == "failed" and failed.reason == "ValueError: no such shape"


def test_the_headline_names_the_best_share_of_each_limit():
    bench = _bench_module()
    rows = [bench.Row("generate_plain_b64", "plain 64", "tok/s", "measured", rate=100.0, limit=1000.0),
            bench.Row("generate_static_b64", "static 64", "tok/s", "measured", rate=300.0, limit=1000.0),
            bench.Row("judge_expected", "judge", "judgments/s", "skipped", reason="no time"),
            bench.Row("sft_bf16", "bf16", "tok/s", "measured", rate=50.0, limit=200.0)]
    line = bench.headline(rows)
    assert line == ("headline: decoding (static 64) 300.0 tok/s = 30% of the bandwidth bound; "
                    "SFT (bf16) 50.0 tok/s = 25% of peak (MFU)")
    assert bench.headline(rows[2:3]) == "headline: nothing measured (the reasons are above)"
