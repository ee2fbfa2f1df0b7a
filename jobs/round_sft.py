"""A round's training, the paper's main recipe (round.training: sft): retrain from the BASE on the seed SFT
data plus the best-of-N responses of every round so far.

Each round trainer (this file, jobs/round_dpo.py) is one `train_round` with the same signature, so the
round loop (jobs/rounds.py) picks one by name and knows nothing of either method.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from alma.core.seeds import SftExample
from alma.jobs.initial_models import sft_rows, train_stage
from alma.jobs.run_context import RunContext


def round_training_rows(ctx: RunContext, r: int, seed_sft: list[SftExample]) -> list[dict]:
    """Seed SFT data plus the best responses of rounds 1..r (the paper retrains on everything so far)."""
    rows = sft_rows(seed_sft, ctx.cfg.train.seed_rows, ctx.cfg.seed)
    for k in range(1, r + 1):
        for b in pq.read_table(ctx.layout.round(k).best_file).to_pylist():
            rows.append({"prompt": [{"role": "user", "content": b["prompt"]}], "completion": b["response"],
                         "source": f"round-{k}"})
    return rows


def train_round(ctx: RunContext, r: int, base: Path, scores: Path, seed_sft: list[SftExample]) -> tuple[Path, int]:
    """checkpoints/round-<r> trained from `base`; returns it and how many rows it trained on."""
    rows = round_training_rows(ctx, r, seed_sft)
    return train_stage(ctx, f"round-{r}", base, rows, ctx.cfg.seed + 1000 * r, round=r), len(rows)
