"""Steps 2-4 of one round: draw fresh prompts, sample N responses over the checkpoint mix, judge them,
keep the best of N, and retrain from the base on the seed data plus every round's best so far.

A round is two calls, `draw_and_sample` then `judge_and_train`, because the judge's self-distillation
(jobs/distill.py) runs between them in round 1.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from alma.actors.callers import GenerateCaller, JudgeCaller
from alma.config import LATEST
from alma.core.console import say
from alma.core.diversity import RANDOM_BASELINES, diversity_report
from alma.core.draw import draw_clustered, draw_random
from alma.core.manifest import Manifest, StageWriter, read_manifest
from alma.core.seeds import SftExample
from alma.core.selection import best_of_n, effective_mix, split_n
from alma.jobs import round_dpo, round_sft
from alma.jobs.pool import read_clusters, unit_vectors
from alma.jobs.run_context import RunContext
from alma.core.tables import read_table
from alma.jobs.streaming import stream_through

# round.training -> the round trainer: train_round(ctx, r, base, scores, seed_sft) -> (checkpoint, rows)
ROUND_TRAINERS = {"sft": round_sft.train_round, "dpo": round_dpo.train_round}



@dataclass
class RoundResult:
    round: int
    prompts: int
    responses: int
    mean_score_all: float
    mean_score_best: float
    train_examples: int  # SFT rows, or with round.training dpo the preference pairs
    checkpoint: Path
    seconds: float
    diversity: dict = field(default_factory=dict)  # the draw's, and random draws': see core.diversity


def _used_prompt_ids(ctx: RunContext, before: int) -> set[str]:
    used: set[str] = set()
    for r in range(1, before):
        used |= set(pq.read_table(ctx.layout.round(r).draw_file, columns=["prompt_id"])
                    ["prompt_id"].to_pylist())
    return used


def draw_stage(ctx: RunContext, r: int, pool_file: Path) -> Path:
    """Round r's K prompts, never one an earlier round drew, with a diversity report against random draws."""
    out = ctx.layout.round(r).draw
    k, method = ctx.cfg.round.prompts_per_round, ctx.cfg.round.draw

    def build(w: StageWriter) -> None:
        pool = pq.read_table(pool_file, columns=["prompt_id", "prompt"])
        text = dict(zip(pool["prompt_id"].to_pylist(), pool["prompt"].to_pylist()))
        ids, clusters = read_clusters(ctx)
        cluster = dict(zip(ids, clusters))
        used = _used_prompt_ids(ctx, r)
        seed = ctx.cfg.seed * 100_003 + r
        if method == "clustered":
            drawn = draw_clustered(ids, clusters, used, k, seed)
        else:
            drawn = draw_random(ids, used, k, seed)
        baselines = [draw_random(ids, used, k, seed=seed + 7919 * (b + 1)) for b in range(RANDOM_BASELINES)]
        unit = unit_vectors(ctx, sorted(set(drawn).union(*baselines)))
        pq.write_table(pa.table({"prompt_id": drawn, "prompt": [text[i] for i in drawn],
                                 "cluster": pa.array([cluster[i] for i in drawn], pa.int32())}), w.path / ctx.layout.round(r).draw_file.name)
        w.rows = len(drawn)
        w.info = {"method": method, "unused_before": len(ids) - len(used),
                  "diversity": diversity_report(drawn, baselines, text, cluster, unit)}

    info = ctx.stage(out, f"round {r} draw", build, kind="draw", round=r).info
    say(f"round {r} draw ({method}) vs random: " + ", ".join(
        f"{key} {info['diversity']['draw'][key]:.3g}/{info['diversity']['random'][key]:.3g}"
        for key in info["diversity"]["draw"]))
    return ctx.layout.round(r).draw_file


def responses_stage(ctx: RunContext, r: int, draw_file: Path, checkpoints: dict[str, Path]) -> Path:
    out = ctx.layout.round(r).responses

    def build(w: StageWriter) -> None:
        split = split_n(ctx.cfg.round.responses_per_prompt, effective_mix(ctx.cfg.round.checkpoint_mix, r, LATEST))
        draw = pq.read_table(draw_file).to_pylist()
        locations = {name: ctx.stage_location(path) for name, path in checkpoints.items()}
        requests = [{"prompt_id": d["prompt_id"], "prompt": d["prompt"], "mode": "chat", "checkpoint": name,
                     "checkpoint_path": locations[name], "n": n, "seed": f"{ctx.cfg.seed}-{r}-{d['prompt_id']}-{name}"}
                    for d in draw for name, n in split.items()]
        ctx.apps.generator()
        streamed = stream_through(requests, GenerateCaller, ctx.cfg, w.path,
                                  {"sampling": ctx.cfg.round.sampling.model_dump()})
        w.rows = streamed.rows
        w.info = {"split": split, **streamed.info()}

    ctx.stage(out, f"round {r} responses", build, kind="responses", round=r)
    return out


def scores_stage(ctx: RunContext, r: int, responses: Path, judge: Path) -> Path:
    """Score every response with the judge app serving `judge` (deployed if it is not yet)."""
    out = ctx.layout.round(r).scores

    def build(w: StageWriter) -> None:
        ctx.apps.judge(ctx.stage_location(judge))
        streamed = stream_through(responses, JudgeCaller, ctx.cfg, w.path, location=ctx.stage_location(responses))
        w.rows = streamed.rows
        w.info = {"judge": str(judge), "scoring": ctx.cfg.judge.scoring, **streamed.info()}

    ctx.stage(out, f"round {r} judge", build, kind="scores", round=r)
    return out


def best_stage(ctx: RunContext, r: int, scores: Path) -> Manifest:
    out = ctx.layout.round(r).best

    def build(w: StageWriter) -> None:
        rows = read_table(scores).drop_columns(["distribution"]).to_pylist()
        best = best_of_n(rows)
        pq.write_table(pa.Table.from_pylist(best), w.path / ctx.layout.round(r).best_file.name)
        # Sampled judgments that parsed nothing have no score (NaN): left out of the means, counted.
        scored = [row["score"] for row in rows if not math.isnan(row["score"])]
        w.rows = len(best)
        w.info = {"mean_score_all": _mean(scored), "mean_score_best": _mean([b["score"] for b in best]),
                  # How much of the 0..10 scale the judge uses: best-of-N selects on noise when this is small.
                  "score_sd": statistics.pstdev(scored) if len(scored) > 1 else math.nan,
                  "responses": len(rows), "unscored": len(rows) - len(scored),
                  "missing_samples": sum(row["missing"] for row in rows),
                  "winners_by_checkpoint": _count(b["checkpoint"] for b in best)}

    return ctx.stage(out, f"round {r} best-of-N", build, kind="best", round=r)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def draw_and_sample(ctx: RunContext, r: int, pool_file: Path, sft_paths: list[Path]) -> Path:
    """Draw round r's K prompts and sample their N responses; returns the responses folder."""
    checkpoints = {f"sft-{i}": p for i, p in enumerate(sft_paths, start=1)}
    if r > 1:
        checkpoints[LATEST] = ctx.layout.checkpoint(f"round-{r - 1}")
    draw = draw_stage(ctx, r, pool_file)
    return responses_stage(ctx, r, draw, checkpoints)


def judge_and_train(ctx: RunContext, r: int, base: Path, responses: Path, judge: Path,
                    seed_sft: list[SftExample]) -> RoundResult:
    """Judge round r's responses with the deployed judge, keep the best of N, retrain from the base (or,
    with round.training dpo, train on preference pairs: jobs/round_dpo.py)."""
    scores = scores_stage(ctx, r, responses, judge)
    info = best_stage(ctx, r, scores).info
    ckpt, trained_on = ROUND_TRAINERS[ctx.cfg.round.training](ctx, r, base, scores, seed_sft)
    seconds = ctx.round_seconds.get(r, 0.0)
    return RoundResult(r, ctx.cfg.round.prompts_per_round, info["responses"], info["mean_score_all"],
                       info["mean_score_best"], trained_on, ckpt, round(seconds, 1),
                       read_manifest(ctx.layout.round(r).draw).info["diversity"])
