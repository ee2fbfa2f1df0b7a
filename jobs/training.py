"""Fine-tuning through Ray Train: a TorchTrainer whose workers run TRL's SFTTrainer.

Every model of the recipe (both initial SFT models, the judge, each round's model) is trained here from a
base checkpoint on a prompt/completion table, so the whole recipe shares one training path. Rank 0 writes
the final weights straight into the stage's temporary folder, which the stage then commits atomically.
The DPO variant's rounds (jobs/round_dpo.py) run TRL's DPOTrainer through the same `fit` and `run_trainer`.

A worker that dies (its process, its node) fails the attempt; Ray Train's FailureConfig starts the worker
group again, up to `train.max_failures` times, and the loop continues from the last checkpoint it
reported (every `train.checkpoint_steps` steps: weights as safetensors, optimizer, scheduler and RNG
state, read back with torch.load(weights_only=True)), or from the start when there is none. Those
checkpoints live in the run's Ray Train storage only while the training runs: the committed stage holds
the final weights.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from alma.config import TrainConfig
from alma.core.errors import StageFailed
from alma.core.storage import delete_folder, get_folder, is_uri, join_uri, local_stage, open_uri, put_folder
from alma.jobs.progress import current_label, read_steps, step_callback, steps_file, watch

log = logging.getLogger("alma.train")

# The warm worker groups of the block the driver is in (jobs.warm_training.warm_trainers sets it): fit trains
# on them; None, a worker group per training.
WARM: contextvars.ContextVar[Any] = contextvars.ContextVar("alma_warm_trainers", default=None)

DATA_FILE = "train_data.parquet"
METRICS_FILE = "train_metrics.json"


def training_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows of {prompt: list of messages, completion: str, source: str} as a Parquet-friendly table."""
    return pa.table({
        "prompt": [json.dumps(r["prompt"], ensure_ascii=False) for r in rows],
        "completion": [r["completion"] for r in rows],
        "source": [r["source"] for r in rows],
    })


def worker_config(config: dict[str, Any]) -> TrainConfig:
    """The training settings inside a Ray Train worker, which also sets its CPU threads."""
    import torch

    cfg = TrainConfig(**config["train"])
    if not cfg.use_gpu:
        torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))
    return cfg


def load_model(path: str, trust_remote_code: bool):
    """A causal LM to train (float32: CPU training and mixed precision both start from it)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True,
                                                trust_remote_code=trust_remote_code)


def mixed_precision(use_gpu: bool) -> dict[str, bool]:
    """TrainingArguments' precision: bf16 autocast over fp32 weights on a GPU that has bf16 (fp16 with loss
    scaling on one that has not), plain fp32 on a CPU, where autocast is slower and fp32 is what the
    measurements here were made with."""
    import torch

    if not (use_gpu and torch.cuda.is_available()):
        return {"bf16": False, "fp16": False}
    bf16 = torch.cuda.is_bf16_supported()
    return {"bf16": bf16, "fp16": not bf16}


def trainer_args(cfg: TrainConfig, output_dir: str, seed: int) -> dict[str, Any]:
    """TrainingArguments every TRL trainer here shares (SFTConfig, DPOConfig): safe on a CPU, no reporting,
    a resumable checkpoint every `checkpoint_steps` steps."""
    return dict(
        output_dir=output_dir,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_length=cfg.max_length,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="linear",
        seed=seed,
        data_seed=seed,
        use_cpu=not cfg.use_gpu,
        **mixed_precision(cfg.use_gpu),
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="steps" if cfg.checkpoint_steps else "no",
        save_steps=cfg.checkpoint_steps or 500,
        save_total_limit=1,
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


# Where a training's wall time goes, in order: each phase ends at the mark of the same name (time.time() in
# the worker; the first and last are the driver's, around TorchTrainer.fit). `startup` in the metrics.
PHASES = ("ray_train_start", "imports", "model_load", "trainer_setup", "train", "save", "ray_train_end")


def phase_seconds(marks: dict[str, float]) -> dict[str, float]:
    """Seconds per phase from the marks: fit_start, then the end of each phase in PHASES (a missing mark
    leaves its phase out, and the next phase counts from the last mark there was)."""
    out: dict[str, float] = {}
    last = marks.get("fit_start")
    for phase in PHASES:
        if phase in marks and last is not None:
            out[phase] = round(max(0.0, marks[phase] - last), 3)
            last = marks[phase]
    return out


JOB_FILE = "alma_job.json"  # in every checkpoint Ray Train keeps: which training wrote it


def job_callback(job: str | None):
    """A TrainerCallback that writes the training's job id into each TRL checkpoint folder before Ray Train's
    report callback (added after it) takes the folder: a warm worker group trains one job after another in
    one Ray Train run (jobs.warm_training), whose latest checkpoint may belong to an earlier job."""
    from transformers import TrainerCallback

    class _Job(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                (folder / JOB_FILE).write_text(json.dumps({"job": job}))

    return _Job()


def run_trainer(trainer: Any, cfg: TrainConfig, tokenizer: Any, config: dict[str, Any], examples: int, scratch: str,
                log_keys: tuple[str, ...] = (), marks: dict[str, float] | None = None) -> None:
    """Train (a restarted worker from the checkpoint Ray Train hands it, if its job, config["job"], wrote
    it), then rank 0 writes the weights, tokenizer and metrics to the output (job_config); `log_keys` of the
    last training log go into the metrics as last_<key>. `marks`: the loop's phase marks so far (PHASES),
    completed here and kept in the metrics."""
    job = config.get("job")
    output, staging = _output_folder(config)
    marks = dict(marks or {})
    marks["trainer_setup"] = time.time()
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback

    if cfg.checkpoint_steps:
        trainer.add_callback(job_callback(job))
        trainer.add_callback(RayTrainReportCallback())
    if ray.train.get_context().get_world_rank() == 0:
        trainer.add_callback(step_callback(steps_file(output)))  # the driver's progress line reads it
    # TRL drops rows whose completion is truncated away entirely; say so instead of training on nothing.
    used = len(trainer.train_dataset)
    if used == 0:
        raise ValueError(f"every training row is longer than max_length={cfg.max_length} tokens; raise it")
    resumed_from = None
    checkpoint = ray.train.get_checkpoint()  # set when this is a restart after a failure
    try:
        if checkpoint is None:
            result = trainer.train()
        else:
            with checkpoint.as_directory() as folder:
                saved = Path(folder) / RayTrainReportCallback.CHECKPOINT_NAME
                marker = saved / JOB_FILE
                writer = json.loads(marker.read_text()).get("job") if marker.is_file() else None
                if writer != job:
                    result = trainer.train()  # an earlier job's checkpoint: this one starts from its start
                else:
                    resumed_from = json.loads((saved / "trainer_state.json").read_text())["global_step"]
                    result = trainer.train(resume_from_checkpoint=str(saved))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    marks["train"] = time.time()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    metrics = {"nodes": _worker_nodes(), "pid": os.getpid(), "steps": result.global_step,
               "train_loss": result.training_loss, "first_loss": logs[0]["loss"] if logs else None, "last_loss": logs[-1]["loss"] if logs else None,
               "examples": examples, "examples_used": used, "seconds": result.metrics.get("train_runtime"),
               "resumed_from_step": resumed_from,
               **{f"last_{key}": logs[-1].get(key) if logs else None for key in log_keys}}
    if ray.train.get_context().get_world_rank() == 0:
        trainer.model.save_pretrained(str(output), safe_serialization=True)
        tokenizer.save_pretrained(str(output))
        marks["save"] = time.time()
        (output / METRICS_FILE).write_text(json.dumps({**metrics, "marks": marks}, indent=2))
        if staging is not None:
            steps_file(output).unlink(missing_ok=True)
            put_folder(output, staging)
            shutil.rmtree(output, ignore_errors=True)
    ray.train.report(metrics)


def _output_folder(config: dict[str, Any]) -> tuple[Path, str | None]:
    """Where rank 0 writes the model: the driver's output folder when this worker is on the driver's node
    (or the run folder is shared), else a folder of its own, then copied to the staging URI."""
    import ray

    staging = config.get("staging")
    if staging is None or ray.get_runtime_context().get_node_id() == config.get("driver_node"):
        return Path(config["output"]), None
    return Path(tempfile.mkdtemp(prefix="alma-output-")), staging


def _worker_nodes() -> list[str]:
    """The Ray node id of every worker of this training, by rank (gathered over the worker group's process
    group when there are several): the stage's record of where it trained."""
    import ray
    import ray.train

    node = ray.get_runtime_context().get_node_id()
    world = ray.train.get_context().get_world_size()
    if world == 1:
        return [node]
    import torch.distributed as dist

    nodes: list[str] = [""] * world
    dist.all_gather_object(nodes, node)
    return nodes


def _train_loop(config: dict[str, Any]) -> None:
    """Runs inside each Ray Train worker."""
    marks = {"ray_train_start": time.time()}
    import datasets
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    marks["imports"] = time.time()
    cfg = worker_config(config)
    trust = config["trust_remote_code"]
    table = read_rows(config)
    ds = datasets.Dataset.from_list([
        {"prompt": json.loads(p), "completion": [{"role": "assistant", "content": c}]}
        for p, c in zip(table["prompt"].to_pylist(), table["completion"].to_pylist())
    ])
    base = str(local_stage(config["base"]))
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=trust)
    model = load_model(base, trust)
    marks["model_load"] = time.time()
    scratch = tempfile.mkdtemp(prefix="alma-train-")  # the Trainer wants a folder; nothing is kept there
    args = SFTConfig(**trainer_args(cfg, scratch, config["seed"]))
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer)
    # TRL counts the tokens it trained on: the run's throughput (summary.json) reads them.
    run_trainer(trainer, cfg, tokenizer, config, len(ds), scratch, log_keys=("num_tokens",), marks=marks)


def train_sft(name: str, base: str | Path, data: Path, output: Path, train: TrainConfig, seed: int,
              storage: str | Path, trust_remote_code: bool = False) -> dict[str, Any]:
    """Fine-tune `base` on the prompt/completion table `data` into `output`; returns training metrics."""
    return fit(_train_loop, name, {"data": str(data), "base": str(base), "seed": seed,
                                   "trust_remote_code": trust_remote_code}, output, train, storage)


def _training_failures() -> tuple[type[BaseException], ...]:
    """Ray Train's "training failed" errors (the v1 and v2 classes, whichever this Ray has)."""
    import ray.train

    found: list[type[BaseException]] = [ray.train.TrainingFailedError]
    try:
        from ray.train.v2.api.exceptions import TrainingFailedError

        found.append(TrainingFailedError)
    except ImportError:
        pass
    return tuple(found)


def worker_bundle(train: TrainConfig) -> dict[str, float]:
    """The resources one Ray Train worker of this training asks for (its placement group bundle)."""
    bundle = {**train.resources, "CPU": train.cpus_per_worker}
    if train.use_gpu:
        bundle["GPU"] = 1
    return bundle


def fit(loop: Callable[[dict[str, Any]], None], name: str, loop_config: dict[str, Any], output: Path,
        train: TrainConfig, storage: str | Path) -> dict[str, Any]:
    """Run `loop` on `train.num_workers` Ray Train workers (it gets `loop_config` plus "train" and "output")
    and return the metrics it wrote to `output`: on a warm worker group of the same shape where the driver
    keeps them (jobs.warm_training), else on a worker group started for this training alone."""
    fit_start = time.time()
    config = job_config(loop_config, output, train, storage, name)
    warm = WARM.get()
    if warm is not None:
        warm.train(loop, name, config, output, train)
        fetch_output(config)
        return _finish(name, output, fit_start)

    # One Ray Train run folder per training, started empty: Ray Train would resume a run it finds there
    # (left by a driver that was killed), and this stage is recomputed from scratch instead.
    run_folder = storage_folder(storage, name)
    delete_folder(run_folder)
    trainer = torch_trainer(loop, config, name, train, storage)
    try:
        with watch_steps(name, output):
            trainer.fit()
        fetch_output(config)
    except _training_failures() as e:
        raise gave_up(name, train, e) from None
    finally:
        delete_folder(run_folder)
    return _finish(name, output, fit_start)


def torch_trainer(loop: Callable[[dict[str, Any]], None], config: dict[str, Any], name: str, train: TrainConfig,
                  storage: str | Path):
    """The TorchTrainer of every training here (on its own, or a warm group's): `train`'s workers, failure
    budget and checkpoints kept, its Ray Train run folder `storage/name` (a folder, or at a URI)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if is_uri(str(storage)):
        filesystem, path = open_uri(str(storage))
        where: dict[str, Any] = {"storage_path": path, "storage_filesystem": filesystem}
    else:
        where = {"storage_path": str(Path(storage).resolve())}
    return TorchTrainer(
        loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=train.num_workers, use_gpu=train.use_gpu,
                                     resources_per_worker=worker_bundle(train)),
        run_config=RunConfig(name=name, failure_config=FailureConfig(max_failures=train.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=1), **where),
    )


def storage_folder(storage: str | Path, name: str) -> str:
    """The Ray Train run folder `name` in `storage` (a folder, or a URI)."""
    return join_uri(str(storage), name) if is_uri(str(storage)) else str(Path(storage).resolve() / name)


def job_config(loop_config: dict[str, Any], output: Path, train: TrainConfig, storage: str | Path,
               name: str) -> dict[str, Any]:
    """What a training's loop gets: its settings, its rows (through Ray's object store, so that a worker on
    any node has them) and where rank 0 writes the model: `output` on the driver's node; elsewhere, when the
    run is at a URI (no shared disk), a staging folder there that the driver fetches into `output`."""
    import ray

    config = {**loop_config, "train": train.model_dump(), "output": str(output)}
    if "data" in loop_config:
        config["data"] = ray.put(pq.read_table(loop_config["data"]))
    if is_uri(str(storage)):
        config["staging"] = storage_folder(storage, f"staging-{name}-{time.time_ns()}")
        config["driver_node"] = ray.get_runtime_context().get_node_id()
    return config


def read_rows(config: dict[str, Any]) -> pa.Table:
    """The training table a loop was handed (job_config)."""
    import ray

    return ray.get(config["data"])


def fetch_output(config: dict[str, Any]) -> None:
    """Bring what rank 0 wrote to the staging folder (a worker off the driver's node) into `output`."""
    staging = config.get("staging")
    if staging is None:
        return
    if not (Path(config["output"]) / METRICS_FILE).is_file():
        get_folder(staging, Path(config["output"]))
    delete_folder(staging)


@contextlib.contextmanager
def watch_steps(name: str, output: Path) -> Iterator[None]:
    """The driver's progress line for a training writing into `output`, from the step count its rank 0
    leaves beside it (jobs.progress.steps_file), removed when the block ends."""
    steps = steps_file(output)
    try:
        with watch(lambda: read_steps(steps), current_label(f"train {name}"), unit="steps"):
            yield
    finally:
        steps.unlink(missing_ok=True)


def gave_up(name: str, train: TrainConfig, error: BaseException) -> StageFailed:
    """The one-line error for a training Ray Train gave up on; its full error goes to the driver's log."""
    log.error("train %s failed", name, exc_info=error)  # the workers' tracebacks
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return StageFailed(f"train {name}: Ray Train gave up after {train.max_failures} restart(s) ({first}); the "
                       "full error is in the run's logs/driver.log, and `alma run --resume RUN` continues "
                       "from the last committed stage")


def _finish(name: str, output: Path, fit_start: float) -> dict[str, Any]:
    """The metrics rank 0 wrote to `output`, with where the training's wall time went."""
    metrics = json.loads((output / METRICS_FILE).read_text())
    marks = {**metrics.pop("marks", {}), "fit_start": fit_start, "ray_train_end": time.time()}
    metrics["startup"] = phase_seconds(marks)  # where the wall time went (the train phase is the steps)
    (output / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    log.info("trained %s: %d steps, loss %.3f -> %.3f", name, metrics["steps"],
             metrics["first_loss"] or float("nan"), metrics["last_loss"] or float("nan"))
    return metrics
