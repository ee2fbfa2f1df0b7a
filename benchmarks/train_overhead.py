"""Training overhead: TRL SFT steps inside Ray Train (the run's path, jobs.training.train_sft) vs the same TRL
SFTTrainer in this process, in steady state, with the start-up of each reported apart.

    python benchmarks/train_overhead.py                                  # builtin:tiny, 4 and 16 steps
    python benchmarks/train_overhead.py --model builtin:smollm2-135m --steps 2,6
    python benchmarks/train_overhead.py --set train.cpus_per_worker=2

Same data (the bundled SFT seeds, as the SFT models train on them), same TrainConfig (the preset's `train`,
with max_steps set), same threads (train.cpus_per_worker, which the Ray worker sets too), same TRL
arguments (jobs.training.trainer_args). Steady state is measured by difference: each side trains S1 and
then S2 steps, and a step costs (runtime(S2) - runtime(S1)) / (S2 - S1), where runtime is TRL's own
train_runtime (the first steps' warm-up and everything before train() cancel out). Start-up is the rest of
the wall time: for Ray Train, the worker group, imports, model load and saving the weights; in process,
model load and trainer set-up. Sides alternate (Ray S1, in-process S1, Ray S2, in-process S2). Then the
same two trainings run as jobs of one warm worker group (jobs.warm_training, what a run does after step 0),
and a table says where each Ray Train training's wall time went (jobs.training.PHASES).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import add_model_argument, bench_config, print_table, progress, work_dir


def _in_process(base: Path, data: Path, train, seed: int, work: Path) -> dict[str, float]:
    import datasets
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoTokenizer, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from alma.jobs.training import load_model, trainer_args

    started = time.perf_counter()
    torch.set_num_threads(max(1, int(train.cpus_per_worker)))
    table = pq.read_table(data)
    ds = datasets.Dataset.from_list([
        {"prompt": json.loads(p), "completion": [{"role": "assistant", "content": c}]}
        for p, c in zip(table["prompt"].to_pylist(), table["completion"].to_pylist())])
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    trainer = SFTTrainer(model=load_model(str(base), False), args=SFTConfig(**trainer_args(train, str(work), seed)),
                         train_dataset=ds, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # its log lines would land in the table's stdout
    result = trainer.train()
    wall = time.perf_counter() - started
    logs = [h for h in trainer.state.log_history if "num_tokens" in h]
    return {"wall": wall, "runtime": result.metrics["train_runtime"], "steps": result.global_step,
            "tokens": logs[-1]["num_tokens"] if logs else 0}


def _ray_train(name: str, base: Path, data: Path, train, seed: int, work: Path) -> dict[str, float]:
    from alma.jobs.training import train_sft

    started = time.perf_counter()
    metrics = train_sft(name, base, data, work / name, train, seed, work / "ray_train")
    wall = time.perf_counter() - started
    return {"wall": wall, "runtime": metrics["seconds"], "steps": metrics["steps"],
            "tokens": metrics.get("last_num_tokens") or 0, "startup": metrics.get("startup") or {}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_argument(parser)
    parser.add_argument("--steps", default="4,16", help="S1,S2: the two training lengths compared")
    parser.add_argument("--out", metavar="FILE", help="also write the start-ups as JSON (`alma plan --throughputs`)")
    args = parser.parse_args(argv)

    import pyarrow.parquet as pq

    from alma.cluster.local import start_ray, stop_ray
    from alma.core.seeds import bundled, load_sft
    from alma.jobs.initial_models import sft_rows
    from alma.jobs.training import training_table
    from alma.jobs.warm_training import warm_trainers
    from alma.checkpoints import resolve_model

    s1, s2 = (int(s) for s in args.steps.split(","))
    work = work_dir()
    cfg = bench_config(args.model, work, args.overrides)
    base = resolve_model(cfg.model.base).resolve()
    data = work / "train_data.parquet"
    pq.write_table(training_table(sft_rows(load_sft(bundled("sft.jsonl")))), data)
    runs: dict[tuple[str, int], dict[str, float]] = {}
    ctx = start_ray(work, None, cfg.cluster.host, cfg.cluster.num_cpus)
    try:
        for steps in (s1, s2):
            train = cfg.train.model_copy(update={"max_steps": steps, "epochs": 1000.0})
            runs["ray", steps] = _ray_train(f"bench-{steps}", base, data, train, cfg.seed, work)
            progress(f"Ray Train {steps} steps: {runs['ray', steps]}")
            runs["local", steps] = _in_process(base, data, train, cfg.seed, work / f"local-{steps}")
            progress(f"in-process {steps} steps: {runs['local', steps]}")
        # The same two trainings as a run trains after step 0: jobs of one warm worker group.
        with warm_trainers(work / "ray_train"):
            for steps in (s1, s2):
                train = cfg.train.model_copy(update={"max_steps": steps, "epochs": 1000.0})
                runs["warm", steps] = _ray_train(f"warm-{steps}", base, data, train, cfg.seed, work)
                progress(f"warm Ray Train {steps} steps: {runs['warm', steps]}")
    finally:
        stop_ray(ctx)

    def step_s(side: str) -> float:
        return (runs[side, s2]["runtime"] - runs[side, s1]["runtime"]) / (s2 - s1)

    def tokens_per_s(side: str) -> float:
        return (runs[side, s2]["tokens"] - runs[side, s1]["tokens"]) / (runs[side, s2]["runtime"] -
                                                                         runs[side, s1]["runtime"])

    rows = []
    for side, name in (("local", "TRL in-process"), ("ray", "Ray Train + TRL")):
        for steps in (s1, s2):
            r = runs[side, steps]
            rows.append([f"{name}, {steps} steps", r["wall"], r["runtime"], r["wall"] - r["runtime"], "", ""])
        rows.append([f"{name}, steady state", "", "", "", step_s(side), tokens_per_s(side)])
    from alma.jobs.training import PHASES

    def outside(side: str, steps: int) -> float:
        """Seconds of the training's wall time that are not its steps."""
        return sum(v for k, v in runs[side, steps]["startup"].items() if k != "train")

    # Where each Ray Train run's wall time went (jobs.training.PHASES, from the marks its worker and the
    # driver took): each training on a worker group of its own, then both as jobs of one warm worker group.
    labels = {"ray": "Ray Train, own worker group", "warm": "Ray Train, warm worker group"}
    print_table("Ray Train wall time by phase (seconds)", ["run", *PHASES, "outside train"],
                [[f"{labels[side]}, {steps} steps", *(runs[side, steps]["startup"].get(p, "") for p in PHASES),
                  outside(side, steps)] for side in ("ray", "warm") for steps in (s1, s2)],
                f"start-up of a second training: warm {outside('warm', s2):.1f}s vs its own worker group "
                f"{outside('ray', s2):.1f}s (target <= 5 s)")
    ratio = step_s("local") / step_s("ray")
    print_table(
        f"training overhead: {args.model}, batch {cfg.train.batch_size}, {cfg.train.cpus_per_worker:g} CPU(s) per "
        f"worker, {cfg.train.num_workers} worker(s), steady state from {s1} -> {s2} steps",
        ["run", "wall s", "TRL runtime s", "start-up s", "s/step", "tokens/s"], rows,
        f"Ray Train / in-process steady-state throughput: {ratio:.2f} (target >= 0.9); start-up "
        f"{runs['ray', s1]['wall'] - runs['ray', s1]['runtime']:.1f}s vs "
        f"{runs['local', s1]['wall'] - runs['local', s1]['runtime']:.1f}s; a warm worker group's second "
        f"training {outside('warm', s2):.1f}s outside its steps")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "benchmark": "train_overhead", "model": args.model, "steps": [s1, s2],
            # what alma plan reads: a training's seconds outside its steps, on its own worker group (the
            # longer of the two) and as the second job of a warm one
            "training_startup_s": round(max(outside("ray", s1), outside("ray", s2)), 2),
            "warm_training_startup_s": round(outside("warm", s2), 2),
            "runs": {f"{side}-{steps}": runs[side, steps] for side, steps in runs}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
