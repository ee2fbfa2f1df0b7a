"""Step 1: the prompt pool, written few-shot by the base model, parsed, filtered and de-duplicated.

Built once per run and reused by every round. (Clustering for diverse drawing: issue 4.)
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from alma.actors.callers import GenerateCaller
from alma.core.errors import RunStateError
from alma.core.manifest import StageWriter
from alma.core.prompts import PromptFilter, few_shot_request, normalize, parse_reply, prompt_id, sample_few_shot
from alma.jobs.run_context import RunContext
from alma.jobs.streaming import read_table, stream_through

POOL_FILE = "prompts.parquet"


def _attempt(request_id: str) -> int:
    return int(request_id.rsplit("-", 1)[1])


def build_pool(ctx: RunContext, base: Path, seed_prompts: list[str]) -> Path:
    cfg = ctx.cfg.pool
    out = ctx.run_dir / "pool"

    def build(w: StageWriter) -> None:
        rng = random.Random(ctx.cfg.seed)
        shots = [sample_few_shot(seed_prompts, cfg.few_shot, rng) for _ in range(cfg.attempts)]
        requests = [{"prompt_id": f"attempt-{i}", "prompt": few_shot_request(s), "mode": "text",
                     "checkpoint": "base", "checkpoint_path": str(base), "n": 1, "seed": f"pool-{ctx.cfg.seed}-{i}"}
                    for i, s in enumerate(shots)]
        stream_through(requests, GenerateCaller, ctx.cfg, w.path / "raw",
                       {"sampling": cfg.sampling.model_dump()})
        # Attempt order, not arrival order: which duplicate is kept must not depend on scheduling.
        raw = sorted(read_table(w.path / "raw").to_pylist(), key=lambda r: _attempt(r["prompt_id"]))
        filt = PromptFilter(cfg.min_chars, cfg.max_chars, cfg.min_letter_ratio,
                            blocked={normalize(p) for p in seed_prompts})
        kept = []
        for row in raw:
            text = parse_reply(row["response"])
            if filt.keep(text, shots[_attempt(row["prompt_id"])]):
                kept.append({"prompt_id": prompt_id(text), "prompt": text, "attempt": row["prompt_id"]})
        pq.write_table(pa.Table.from_pylist(kept, schema=pa.schema(
            [("prompt_id", pa.string()), ("prompt", pa.string()), ("attempt", pa.string())])), w.path / POOL_FILE)
        w.rows = len(kept)
        w.info = {"funnel": filt.funnel(len(raw))}

    manifest = ctx.stage(out, "prompt pool", build)
    need = ctx.cfg.rounds * ctx.cfg.round.prompts_per_round
    if (manifest.rows or 0) < need:
        raise RunStateError(
            f"the prompt pool kept {manifest.rows} prompts (funnel {manifest.info.get('funnel')}) but "
            f"{ctx.cfg.rounds} rounds x {ctx.cfg.round.prompts_per_round} prompts need {need}; "
            "raise pool.attempts or relax the pool filters")
    return out / POOL_FILE
