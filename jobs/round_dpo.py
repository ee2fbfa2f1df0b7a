"""The DPO variant of a round (round.training: dpo): preference pairs from the judged responses, trained
with TRL's DPOTrainer inside Ray Train.

Per round r, after best-of-N: `rounds/<rr>/pairs/` holds one pair per prompt (chosen = its best-of-N
response, rejected = another response scored below it: core.pairs), then `checkpoints/round-<r>` is
trained on pairs with DPO. What the paper leaves open, and the defaults:

- start (dpo.start: initial): every round starts again from the initial SFT model sft-1, the way the SFT
  variant retrains from the base every round (the paper's reason: no drift, no forgetting). DPO needs an
  SFT model to start from: its loss only moves a model relative to a reference, so the start must already
  answer requests, which the recipe's (pretrained) base does not. `latest` (iterative DPO from the previous
  round's model) is the option.
- data (dpo.data: all_rounds): the pairs of rounds 1..r, as the SFT variant trains on every round's best
  so far; restarting from sft-1 on round r's pairs alone would forget what earlier rounds taught.
  `this_round` goes with `start: latest`.
- reference (dpo.reference: start): the model the round starts from, as in standard DPO.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from alma.config import DpoConfig, TrainConfig
from alma.core.errors import RunStateError
from alma.core.manifest import Manifest, StageWriter
from alma.core.pairs import Pair, preference_pairs
from alma.core.seeds import SftExample
from alma.jobs.run_context import RunContext
from alma.core.tables import read_table
from alma.core.storage import local_stage
from alma.jobs.training import DATA_FILE, fit, load_model, read_rows, run_trainer, trainer_args, worker_config

INITIAL = "sft-1"
PAIR_SCHEMA = pa.schema([
    ("prompt_id", pa.string()), ("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string()),
    ("chosen_score", pa.float64()), ("rejected_score", pa.float64()),
    ("chosen_checkpoint", pa.string()), ("rejected_checkpoint", pa.string()),
    ("chosen_sample", pa.int64()), ("rejected_sample", pa.int64()),
])


def pair_table(pairs: list[Pair]) -> pa.Table:
    return pa.Table.from_pylist([
        {"prompt_id": p.chosen["prompt_id"], "prompt": p.chosen["prompt"],
         "chosen": p.chosen["response"], "rejected": p.rejected["response"],
         "chosen_score": p.chosen["score"], "rejected_score": p.rejected["score"],
         "chosen_checkpoint": p.chosen["checkpoint"], "rejected_checkpoint": p.rejected["checkpoint"],
         "chosen_sample": p.chosen["sample"], "rejected_sample": p.rejected["sample"]}
        for p in pairs], schema=PAIR_SCHEMA)


def pairs_stage(ctx: RunContext, r: int, scores: Path) -> Manifest:
    """Commit rounds/<rr>/pairs/: round r's preference pairs and why a prompt gave none."""
    out = ctx.layout.round(r).pairs
    rule = ctx.cfg.dpo.pairs

    def build(w: StageWriter) -> None:
        rows = read_table(scores).drop_columns(["distribution"]).to_pylist()
        pairs, counts = preference_pairs(rows, rule, seed=f"{ctx.cfg.seed}-{r}")
        pq.write_table(pair_table(pairs), w.path / ctx.layout.round(r).pairs_file.name)
        margins = [p.chosen["score"] - p.rejected["score"] for p in pairs]
        rejected_from: dict[str, int] = {}
        for p in pairs:
            rejected_from[p.rejected["checkpoint"]] = rejected_from.get(p.rejected["checkpoint"], 0) + 1
        w.rows = len(pairs)
        w.info = {"rule": rule, "prompts": counts.prompts, "single": counts.single, "no_lower": counts.no_lower,
                  "unscored_rows": counts.unscored_rows, "rejected_by_checkpoint": rejected_from,
                  "mean_margin": sum(margins) / len(margins) if margins else None}

    return ctx.stage(out, f"round {r} pairs ({rule})", build, kind="pairs", round=r)


def preference_rows(ctx: RunContext, r: int) -> list[dict[str, Any]]:
    """The pairs round r trains on (dpo.data): every round's so far, or round r's alone."""
    rounds = range(1, r + 1) if ctx.cfg.dpo.data == "all_rounds" else [r]
    rows = []
    for k in rounds:
        for p in pq.read_table(ctx.layout.round(k).pairs_file).to_pylist():
            rows.append({"prompt": [{"role": "user", "content": p["prompt"]}], "chosen": p["chosen"],
                         "rejected": p["rejected"], "source": f"round-{k}"})
    return rows


def preference_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows of {prompt: list of messages, chosen, rejected, source} as a Parquet-friendly table."""
    return pa.table({
        "prompt": [json.dumps(r["prompt"], ensure_ascii=False) for r in rows],
        "chosen": [r["chosen"] for r in rows],
        "rejected": [r["rejected"] for r in rows],
        "source": [r["source"] for r in rows],
    })


def dpo_models(ctx: RunContext, r: int) -> tuple[Path, Path]:
    """(the model round r starts from, its reference model), per dpo.start and dpo.reference."""
    initial = ctx.layout.checkpoint(INITIAL)
    start = initial if ctx.cfg.dpo.start == "initial" or r == 1 else ctx.layout.checkpoint(f"round-{r - 1}")
    return start, start if ctx.cfg.dpo.reference == "start" else initial


def train_round(ctx: RunContext, r: int, base: Path, scores: Path, seed_sft: list[SftExample]) -> tuple[Path, int]:
    """Round r's pairs, then checkpoints/round-<r> trained on them with DPO; (checkpoint, pairs trained on).
    `base` and `seed_sft` are not used: DPO starts from an SFT model (dpo.start), not from the base."""
    pairs_stage(ctx, r, scores)
    rows = preference_rows(ctx, r)
    out = ctx.layout.checkpoint(f"round-{r}")
    start, reference = dpo_models(ctx, r)
    seed = ctx.cfg.seed + 1000 * r
    if not rows:
        raise RunStateError(
            f"round {r} has no preference pairs to train on: every prompt's responses tie its best one or repeat "
            f"it (see {ctx.layout.round(r).pairs / 'manifest.json'}); raise round.responses_per_prompt or "
            "round.sampling.temperature, or use round.training=sft")

    def build(w: StageWriter) -> None:
        data = w.path / DATA_FILE
        pq.write_table(preference_table(rows), data)
        metrics = train_dpo(f"round-{r}", ctx.stage_location(start), ctx.stage_location(reference), data, w.path,
                            ctx.cfg.dpo_train, ctx.cfg.dpo, seed, ctx.train_storage, ctx.cfg.model.trust_remote_code)
        sources: dict[str, int] = {}
        for row in rows:
            sources[row["source"]] = sources.get(row["source"], 0) + 1
        w.rows = len(rows)
        w.info = {"method": "dpo", "base": str(start), "reference": str(reference), "seed": seed,
                  "sources": sources, "dpo": ctx.cfg.dpo.model_dump(), **metrics}

    ctx.stage(out, f"train round-{r}", build, kind="train", round=r)
    return out, len(rows)


def _dpo_loop(config: dict[str, Any]) -> None:
    """Runs inside each Ray Train worker: DPOTrainer on conversational prompt/chosen/rejected rows."""
    marks = {"ray_train_start": time.time()}
    import datasets
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    marks["imports"] = time.time()
    cfg = worker_config(config)
    trust = config["trust_remote_code"]
    table = read_rows(config)
    ds = datasets.Dataset.from_list([
        {"prompt": json.loads(p), "chosen": [{"role": "assistant", "content": c}],
         "rejected": [{"role": "assistant", "content": j}]}
        for p, c, j in zip(table["prompt"].to_pylist(), table["chosen"].to_pylist(), table["rejected"].to_pylist())
    ])
    start = str(local_stage(config["start"]))
    tokenizer = AutoTokenizer.from_pretrained(start, trust_remote_code=trust)
    model = load_model(start, trust)
    # Loaded here rather than left to TRL (which reloads the policy's folder itself), so that the reference
    # may be another model and is read from safetensors with the run's trust_remote_code like every model.
    reference = load_model(str(local_stage(config["reference"])), trust)
    marks["model_load"] = time.time()
    scratch = tempfile.mkdtemp(prefix="alma-dpo-")  # the Trainer wants a folder; nothing is kept there
    args = DPOConfig(**trainer_args(cfg, scratch, config["seed"]), beta=config["beta"], loss_type=[config["loss"]])
    trainer = DPOTrainer(model=model, ref_model=reference, args=args, train_dataset=ds, processing_class=tokenizer)
    run_trainer(trainer, cfg, tokenizer, config, len(ds), scratch,
                log_keys=("num_tokens", "rewards/accuracies", "rewards/margins"), marks=marks)


def train_dpo(name: str, start: str | Path, reference: str | Path, data: Path, output: Path, train: TrainConfig,
              dpo: DpoConfig, seed: int, storage: str | Path, trust_remote_code: bool = False) -> dict[str, Any]:
    """DPO from `start` against `reference` on the prompt/chosen/rejected table `data` into `output`;
    returns training metrics (with the last logged reward accuracy and margin)."""
    return fit(_dpo_loop, name, {"data": str(data), "start": str(start), "reference": str(reference),
                                 "seed": seed, "beta": dpo.beta, "loss": dpo.loss,
                                 "trust_remote_code": trust_remote_code}, output, train, storage)
