"""Fine-tuning through Ray Train: a TorchTrainer whose workers run TRL's SFTTrainer.

Every model of the recipe (both initial SFT models, the judge, each round's model) is trained here from a
base checkpoint on a prompt/completion table, so the whole recipe shares one training path. Rank 0 writes
the final weights straight into the stage's temporary folder, which the stage then commits atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from alma.config import TrainConfig

log = logging.getLogger("alma.train")

DATA_FILE = "train_data.parquet"
METRICS_FILE = "train_metrics.json"


def training_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows of {prompt: list of messages, completion: str, source: str} as a Parquet-friendly table."""
    return pa.table({
        "prompt": [json.dumps(r["prompt"], ensure_ascii=False) for r in rows],
        "completion": [r["completion"] for r in rows],
        "source": [r["source"] for r in rows],
    })


def _train_loop(config: dict[str, Any]) -> None:
    """Runs inside each Ray Train worker."""
    import datasets
    import ray.train
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    cfg = TrainConfig(**config["train"])
    if not cfg.use_gpu:
        torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))
    table = pq.read_table(config["data"])
    ds = datasets.Dataset.from_list([
        {"prompt": json.loads(p), "completion": [{"role": "assistant", "content": c}]}
        for p, c in zip(table["prompt"].to_pylist(), table["completion"].to_pylist())
    ])
    tokenizer = AutoTokenizer.from_pretrained(config["base"])
    model = AutoModelForCausalLM.from_pretrained(config["base"], dtype=torch.float32, use_safetensors=True)
    out = Path(config["output"])
    scratch = tempfile.mkdtemp(prefix="alma-train-")  # the Trainer wants a folder; nothing is kept there
    args = SFTConfig(
        output_dir=scratch,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_length=cfg.max_length,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="linear",
        seed=config["seed"],
        data_seed=config["seed"],
        use_cpu=not cfg.use_gpu,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer)
    # TRL drops rows whose completion is truncated away entirely; say so instead of training on nothing.
    used = len(trainer.train_dataset)
    if used == 0:
        raise ValueError(f"every training row is longer than max_length={cfg.max_length} tokens; raise it")
    try:
        result = trainer.train()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    metrics = {"steps": result.global_step, "train_loss": result.training_loss,
               "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
               "examples": len(ds), "examples_used": used, "seconds": result.metrics.get("train_runtime")}
    if ray.train.get_context().get_world_rank() == 0:
        trainer.model.save_pretrained(str(out), safe_serialization=True)
        tokenizer.save_pretrained(str(out))
        (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    ray.train.report(metrics)


def train_sft(name: str, base: Path, data: Path, output: Path, train: TrainConfig, seed: int,
              storage: Path) -> dict[str, Any]:
    """Fine-tune `base` on the prompt/completion table `data` into `output`; returns training metrics."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": train.cpus_per_worker}
    if train.use_gpu:
        resources["GPU"] = 1
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"train": train.model_dump(), "data": str(data), "base": str(base),
                           "output": str(output), "seed": seed},
        scaling_config=ScalingConfig(num_workers=train.num_workers, use_gpu=train.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(name=f"{name}-{os.getpid()}", storage_path=str(storage.resolve())),
    )
    trainer.fit()
    metrics = json.loads((output / METRICS_FILE).read_text())
    log.info("trained %s: %d steps, loss %.3f -> %.3f", name, metrics["steps"],
             metrics["first_loss"] or float("nan"), metrics["last_loss"] or float("nan"))
    return metrics
