"""Steps 2-4 of one round: draw fresh prompts, sample N responses over the checkpoint mix, judge them,
keep the best of N, and retrain from the base on the seed data plus every round's best so far."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from alma.actors.callers import GenerateCaller, JudgeCaller
from alma.config import LATEST
from alma.core.draw import draw_random
from alma.core.manifest import Manifest, StageWriter
from alma.core.seeds import SftExample
from alma.core.selection import best_of_n, effective_mix, split_n
from alma.jobs.initial_models import sft_rows, train_stage
from alma.jobs.run_context import RunContext
from alma.jobs.streaming import read_table, stream_through

DRAW_FILE = "draw.parquet"
BEST_FILE = "best.parquet"


@dataclass
class RoundResult:
    round: int
    prompts: int
    responses: int
    mean_score_all: float
    mean_score_best: float
    train_examples: int
    checkpoint: Path
    seconds: float


def _used_prompt_ids(ctx: RunContext, before: int) -> set[str]:
    used: set[str] = set()
    for r in range(1, before):
        used |= set(pq.read_table(ctx.round_dir(r) / "draw" / DRAW_FILE, columns=["prompt_id"])
                    ["prompt_id"].to_pylist())
    return used


def draw_stage(ctx: RunContext, r: int, pool_file: Path) -> Path:
    out = ctx.round_dir(r) / "draw"

    def build(w: StageWriter) -> None:
        pool = pq.read_table(pool_file)
        ids = draw_random(pool["prompt_id"].to_pylist(), _used_prompt_ids(ctx, r),
                          ctx.cfg.round.prompts_per_round, seed=ctx.cfg.seed * 100_003 + r)
        text = dict(zip(pool["prompt_id"].to_pylist(), pool["prompt"].to_pylist()))
        pq.write_table(pa.table({"prompt_id": ids, "prompt": [text[i] for i in ids]}), w.path / DRAW_FILE)
        w.rows = len(ids)

    ctx.stage(out, f"round {r} draw", build)
    return out / DRAW_FILE


def responses_stage(ctx: RunContext, r: int, draw_file: Path, checkpoints: dict[str, Path]) -> Path:
    out = ctx.round_dir(r) / "responses"

    def build(w: StageWriter) -> None:
        split = split_n(ctx.cfg.round.responses_per_prompt, effective_mix(ctx.cfg.round.checkpoint_mix, r, LATEST))
        draw = pq.read_table(draw_file).to_pylist()
        requests = [{"prompt_id": d["prompt_id"], "prompt": d["prompt"], "mode": "chat", "checkpoint": name,
                     "checkpoint_path": str(checkpoints[name]), "n": n, "seed": f"{ctx.cfg.seed}-{r}-{d['prompt_id']}-{name}"}
                    for d in draw for name, n in split.items()]
        w.rows = stream_through(requests, GenerateCaller, ctx.cfg, w.path,
                                {"sampling": ctx.cfg.round.sampling.model_dump()})
        w.info = {"split": split}

    ctx.stage(out, f"round {r} responses", build)
    return out


def scores_stage(ctx: RunContext, r: int, responses: Path) -> Path:
    out = ctx.round_dir(r) / "scores"

    def build(w: StageWriter) -> None:
        w.rows = stream_through(responses, JudgeCaller, ctx.cfg, w.path)

    ctx.stage(out, f"round {r} judge", build)
    return out


def best_stage(ctx: RunContext, r: int, scores: Path) -> Manifest:
    out = ctx.round_dir(r) / "best"

    def build(w: StageWriter) -> None:
        table = read_table(scores)
        best = best_of_n(table.drop_columns(["distribution"]).to_pylist())
        pq.write_table(pa.Table.from_pylist(best), w.path / BEST_FILE)
        all_scores = table["score"].to_pylist()
        w.rows = len(best)
        w.info = {"mean_score_all": sum(all_scores) / len(all_scores),
                  "mean_score_best": sum(b["score"] for b in best) / len(best),
                  "responses": len(all_scores),
                  "winners_by_checkpoint": _count(b["checkpoint"] for b in best)}

    return ctx.stage(out, f"round {r} best-of-N", build)


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def round_training_rows(ctx: RunContext, r: int, seed_sft: list[SftExample]) -> list[dict]:
    """Seed SFT data plus the best responses of rounds 1..r (the paper retrains on everything so far)."""
    rows = sft_rows(seed_sft)
    for k in range(1, r + 1):
        for b in pq.read_table(ctx.round_dir(k) / "best" / BEST_FILE).to_pylist():
            rows.append({"prompt": [{"role": "user", "content": b["prompt"]}], "completion": b["response"],
                         "source": f"round-{k}"})
    return rows


def run_round(ctx: RunContext, r: int, base: Path, pool_file: Path, sft_paths: list[Path],
              seed_sft: list[SftExample]) -> RoundResult:
    checkpoints = {f"sft-{i}": p for i, p in enumerate(sft_paths, start=1)}
    if r > 1:
        checkpoints[LATEST] = ctx.checkpoint_dir(f"round-{r - 1}")
    draw = draw_stage(ctx, r, pool_file)
    responses = responses_stage(ctx, r, draw, checkpoints)
    scores = scores_stage(ctx, r, responses)
    info = best_stage(ctx, r, scores).info
    rows = round_training_rows(ctx, r, seed_sft)
    ckpt = train_stage(ctx, f"round-{r}", base, rows, ctx.cfg.seed + 1000 * r)
    seconds = sum(t for label, t in ctx.timings.items() if label.startswith(f"round {r} ") or label == f"train round-{r}")
    return RoundResult(r, ctx.cfg.round.prompts_per_round, info["responses"], info["mean_score_all"],
                       info["mean_score_best"], len(rows), ckpt, round(seconds, 1))
