"""`alma judge eval` on tiny checkpoints: every judge x mode measured, a table and a JSON, one-line errors."""

import argparse
import json
import os
import subprocess
import sys

import pytest

from alma.core.judge_split import split_by_prompt
from alma.core.seeds import bundled, load_judge
from alma.commands.judge_eval import add_arguments, judge_eval_main

MODES = ("expected", "argmax", "sampled")


def write_jsonl(path, examples):
    path.write_text("".join(json.dumps({"prompt": e.prompt, "response": e.response, "score": e.score}) + "\n"
                            for e in examples))
    return path


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_eval_on_tiny_checkpoints(tmp_path, tiny_model, alma_cache, monkeypatch, capsys):
    monkeypatch.setenv("ALMA_CACHE", str(alma_cache))  # builtin:tiny, the base, resolves to the fixture's folder
    split = split_by_prompt(load_judge(bundled("judge.jsonl")), 0.25, seed=0)
    heldout = write_jsonl(tmp_path / "heldout.jsonl", split.heldout[:6])
    out = tmp_path / "eval.json"
    args = parse(["--preset", "tiny", "--checkpoint", str(tiny_model), "--distilled", str(tiny_model),
                  "--heldout", str(heldout), "--out", str(out), "--set", "judge.samples=2"])
    assert judge_eval_main(args) == 0
    report = json.loads(out.read_text())
    assert report["heldout_triplets"] == 6 and report["heldout_prompts"] == 3 and report["samples"] == 2
    results = report["results"]
    assert [(r["judge"], r["mode"]) for r in results] == [
        (judge, mode) for judge in ("base", "judge", "judge-distilled") for mode in MODES]
    for r in results:
        assert r["pairs"] == 3 and r["triplets"] == 6 and len(r["scores"]) == 6
        assert r["pairwise_accuracy"] is None or 0 <= r["pairwise_accuracy"] <= 1
        assert 0 <= r["ties"] <= r["pairs"] and r["missing"] <= (12 if r["mode"] == "sampled" else 0)
        if r["mode"] == "argmax":
            assert all(s == int(s) for s in r["scores"])
    # The base judge reads a 3-shot prompt, the fine-tuned one a bare prompt: same weights, other scores.
    by = {(r["judge"], r["mode"]): r for r in results}
    assert by["base", "expected"]["scores"] != by["judge", "expected"]["scores"]
    assert by["judge", "expected"]["scores"] == by["judge-distilled", "expected"]["scores"]
    table = capsys.readouterr().out
    assert "pairwise acc" in table and "base (3-shot)" in table and str(out) in table


def test_user_errors_are_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "alma.cli", "judge", "eval", "--run", str(tmp_path / "nope")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and "not a run folder" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    res = subprocess.run([sys.executable, "-m", "alma.cli", "judge", "eval", "--preset", "tiny", "--modes", "best"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and "--modes" in res.stderr
