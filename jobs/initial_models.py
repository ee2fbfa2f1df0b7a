"""Step 0: the two initial SFT models (two training seeds) and the judge, all fine-tuned from the base."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from alma.core.judge_prompt import judge_messages, judge_target
from alma.core.manifest import StageWriter
from alma.core.seeds import JudgeExample, SftExample
from alma.jobs.run_context import RunContext
from alma.jobs.training import DATA_FILE, train_sft, training_table


def sft_rows(examples: list[SftExample]) -> list[dict]:
    return [{"prompt": e.prompt, "completion": e.response, "source": "seed"} for e in examples]


def judge_rows(examples: list[JudgeExample], rubric: str, answer_prefix: str) -> list[dict]:
    return [{"prompt": judge_messages(e.prompt, e.response, rubric),
             "completion": judge_target(e.score, answer_prefix), "source": "seed"} for e in examples]


def train_stage(ctx: RunContext, name: str, base: Path, rows: list[dict], seed: int, judge: bool = False) -> Path:
    """Commit checkpoints/<name>: the training data, the fine-tuned weights and their metrics."""
    out = ctx.checkpoint_dir(name)

    def build(w: StageWriter) -> None:
        data = w.path / DATA_FILE
        pq.write_table(training_table(rows), data)
        train = ctx.cfg.judge_train if judge else ctx.cfg.train
        metrics = train_sft(name, base, data, w.path, train, seed, ctx.run_dir / "ray_train")
        w.rows = len(rows)
        w.info = {"base": str(base), "seed": seed, "sources": _count_sources(rows), **metrics}

    ctx.stage(out, f"train {name}", build)
    return out


def _count_sources(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["source"]] = counts.get(r["source"], 0) + 1
    return counts


def initial_models(ctx: RunContext, base: Path, sft: list[SftExample], judge: list[JudgeExample],
                   rubric: str) -> tuple[list[Path], Path]:
    rows = sft_rows(sft)
    sft_paths = [train_stage(ctx, f"sft-{i}", base, rows, seed)
                 for i, seed in enumerate(ctx.cfg.sft_seeds, start=1)]
    judge_path = train_stage(ctx, "judge", base, judge_rows(judge, rubric, ctx.cfg.judge.answer_prefix),
                             ctx.cfg.seed, judge=True)
    return sft_paths, judge_path
