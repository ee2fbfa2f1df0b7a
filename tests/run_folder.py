"""A run folder laid out as `alma run` leaves it, written without Ray or models: committed stages (real
manifests through core.manifest), round Parquet files with known scores, for the status and report tests."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from alma.core.manifest import MANIFEST, commit_stage
from alma.core.selection import best_of_n

CHECKPOINTS = ("sft-1", "sft-2", "latest")
SECONDS = {"train": 30.0, "responses": 10.0, "judge": 20.0}


def commit(run_dir: Path, folder: str, label: str, files: dict[str, pa.Table] | None = None,
           rows: int | None = None, info: dict | None = None) -> None:
    """Commit a stage; its manifest then says it took SECONDS[kind of stage] (a real one's would be ~0 s)."""
    with commit_stage(run_dir / folder, label, "test-config") as w:
        for name, table in (files or {}).items():
            (w.path / name).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, w.path / name)
        w.rows, w.info = rows, info or {}
    manifest = run_dir / folder / MANIFEST
    data = json.loads(manifest.read_text())
    data["seconds"] = SECONDS.get(label.split()[-1] if not label.startswith("train") else "train", 0.5)
    manifest.write_text(json.dumps(data))


def make_run(run_dir: Path, rounds: int = 2, k: int = 3, n: int = 6, done_rounds: int | None = None,
             seed: int = 0) -> dict[int, list[dict]]:
    """A run with `rounds` configured and `done_rounds` (default all) finished; returns each round's score
    rows. Round 2 holds one unscored response (NaN, as `sampled` judging leaves) and an errors table."""
    done_rounds = rounds if done_rounds is None else done_rounds
    rng = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(f"name: fake\nrounds: {rounds}\nmodel:\n  base: builtin:tiny\n")
    for name in ("sft-1", "sft-2"):
        commit(run_dir, f"checkpoints/{name}", f"train {name}", rows=40,
               info={"steps": 5, "seconds": 2.0, "last_num_tokens": 5000})
    commit(run_dir, "pool", "prompt pool", {"prompts.parquet": pa.table({"prompt_id": ["p"], "prompt": ["x"]})},
           rows=30)
    all_scores = {}
    for r in range(1, done_rounds + 1):
        rd = f"rounds/{r:02d}"
        names = CHECKPOINTS[:2] if r == 1 else CHECKPOINTS
        prompts = [f"r{r}-p{i}" for i in range(k)]
        commit(run_dir, f"{rd}/draw", f"round {r} draw",
               {"draw.parquet": pa.table({"prompt_id": prompts, "prompt": [f"prompt {p}" for p in prompts]})},
               rows=k, info={"diversity": {
                   "draw": {"clusters_covered": k, "distinct_1": 0.9, "distinct_2": 1.0, "mean_cosine_distance": 1.1},
                   "random": {"clusters_covered": k - 0.5, "distinct_1": 0.8, "distinct_2": 0.95,
                              "mean_cosine_distance": 1.0}}})
        rows = [{"prompt_id": p, "prompt": f"prompt {p}", "checkpoint": names[s % len(names)], "sample": s,
                 "response": f"answer {s} to {p} " + "word " * rng.randint(1, 9),
                 "score": round(rng.uniform(0, 10), 4), "missing": 0}
                for p in prompts for s in range(n)]
        if r == 2:
            rows[1]["score"] = math.nan
        split = {name: sum(1 for s in range(n) if names[s % len(names)] == name) for name in names}
        responses = pa.Table.from_pylist([{c: row[c] for c in ("prompt_id", "prompt", "checkpoint", "sample",
                                                                "response")} for row in rows])
        commit(run_dir, f"{rd}/responses", f"round {r} responses", {"part-0.parquet": responses.slice(0, n),
                                                                   "part-1.parquet": responses.slice(n)},
               rows=len(rows), info={"split": split})
        scores = {"part-0.parquet": pa.Table.from_pylist(rows)}
        if r == 2:  # one request failed for good: its row is in errors.parquet, not among the scores
            scores["errors.parquet"] = pa.table({"prompt_id": [prompts[0]], "error": ["boom"], "score": [99.0]})
        commit(run_dir, f"{rd}/scores", f"round {r} judge", scores, rows=len(rows))
        best = best_of_n([row for row in rows if not math.isnan(row["score"])])
        commit(run_dir, f"{rd}/best", f"round {r} best-of-N",
               {"best.parquet": pa.Table.from_pylist([{key: b[key] for key in ("prompt_id", "checkpoint", "score")}
                                                      for b in best])}, rows=len(best))
        commit(run_dir, f"checkpoints/round-{r}", f"train round-{r}", rows=40 + k * r,
               info={"steps": 5, "seconds": 2.5, "last_num_tokens": 6000})
        all_scores[r] = rows
    if done_rounds == rounds:
        (run_dir / "summary.json").write_text(json.dumps({
            "rounds": [{"round": r} for r in range(1, rounds + 1)], "wall_seconds": 12.5, "judge": "judge",
            "final_checkpoint": str(run_dir / "checkpoints" / f"round-{rounds}")}))
    return all_scores
