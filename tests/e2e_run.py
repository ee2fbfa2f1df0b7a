"""The tiny end-to-end run that several test files share (built once per session by conftest's `tiny_run`),
and how to take a copy of it back to the state just before a round, so that a test can exercise a real
driver (killed, submitted as a Ray job, on a URI) on one round's work instead of a whole recipe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

N, K, R = 6, 4, 2
M = 10  # self-distillation pairs, fewer than round 1's K x N responses


CPUS = 5  # the local Ray's logical CPUs: step 0's three 1-CPU trainings and the prompt pool (1.05) at once


def run_args(out: str) -> list[str]:
    """`alma run` arguments of the shared tiny run, writing to `out` (a folder or a URI)."""
    return ["run", "--preset", "tiny", "--out", out, "--set", f"rounds={R}", "--set", f"round.prompts_per_round={K}",
            "--set", f"round.responses_per_prompt={N}", "--set", f"judge.distill_responses={M}",
            "--set", f"cluster.num_cpus={CPUS}"]


def alma(args, cache, cwd, env: dict | None = None):
    env = {**os.environ, "ALMA_CACHE": str(cache), "HF_HUB_OFFLINE": "1", **(env or {})}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "alma.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=900)


def rewind_to_round(run: Path, r: int) -> None:
    """The run folder as a driver leaves it when killed just before round r: earlier stages committed."""
    for path in (run / "rounds" / f"{r:02d}", run / "checkpoints" / f"round-{r}", run / "eval", run / "summary.json"):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def copy_before_round(run: Path, dest: Path, r: int) -> Path:
    """A copy of the finished `run` at `dest`, rewound to just before round r (without its private Ray's
    session files, which belong to the driver that made them)."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("ray", "ray_train", "report", "report.html",
                                                             "progress.json"))
    rewind_to_round(dest, r)
    return dest
