"""`alma plan`: what a run costs before it starts, per stage and in total, on a given cluster.

The arithmetic is core/plan.py's; this module turns flags, a preset, a model folder's config.json and
benchmark JSON files into its inputs, and prints the table (or JSON). Nothing is loaded but config files:
a model's size is read from its config.json, never from its weights. What every number assumes, and the
paper's setting next to its reported figure: docs/plan.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from alma.config import DEFAULT_PRESET, PRESETS, AlmaConfig, load_config
from alma.core.errors import AlmaError, ConfigError
from alma.core.plan import (CPU_REFERENCE_CORES, GPUS, KINDS, LLAMA3_8B_PARAMS, PAPER_REPORTED, Cluster, GpuSpec,
                            Measured, Plan, Rates, Stage, Workload, apply_measured, assume, check_count, check_kind,
                            compare, cpu_rates, estimate, gpu_rates, hidden_size, llama_params, paper_workload,
                            read_benchmark)
from alma.core.progress import format_duration

# Workload fields a flag sets directly; every other assumption is set with --assume KEY=VALUE.
FLAGS = {"n": "responses_per_prompt", "k": "prompts_per_round", "rounds": "rounds", "pool": "pool_prompts",
         "prompt_tokens": "prompt_tokens", "response_tokens": "response_tokens", "train_length": "train_length",
         "seed_sft_rows": "seed_sft_rows", "judge_rows": "judge_rows", "distill": "distill_responses",
         "epochs": "epochs", "judge_params": "judge_params"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `alma plan`."""
    what = parser.add_argument_group("what runs (default: the preset's run, or the paper's with --paper)")
    source = what.add_mutually_exclusive_group()
    source.add_argument("--paper", action="store_true",
                        help="the paper's setting (Llama-3-8B, N = 200, K = 50k, R = 10, a 100M-prompt pool, 512 "
                        "H100s), printed beside the paper's reported compute")
    source.add_argument("--preset", choices=PRESETS, default=None, help="take N, K, R, the pool, lengths and "
                        f"training settings from this preset (default: {DEFAULT_PRESET})")
    what.add_argument("--config", metavar="FILE", help="YAML file layered over the preset")
    what.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override one config field, e.g. --set round.responses_per_prompt=16")
    size = what.add_mutually_exclusive_group()
    size.add_argument("--params", type=float, metavar="COUNT", help="base model parameters, e.g. 8e9")
    size.add_argument("--model", metavar="SPEC", help="builtin:NAME or a model folder: its parameters are counted "
                      "from config.json (Llama-style fields), no weights loaded (default: the preset's model.base)")
    what.add_argument("--judge-params", type=float, metavar="COUNT", help="judge parameters (default: the base's)")
    what.add_argument("--n", type=int, help="N: responses per prompt")
    what.add_argument("--k", type=int, help="K: prompts per round")
    what.add_argument("--rounds", type=int, help="R: rounds")
    what.add_argument("--pool", type=int, metavar="PROMPTS", help="prompts kept in the pool (requests: this over "
                      "the keep rate)")
    what.add_argument("--prompt-tokens", type=int, metavar="T", help="mean tokens of a pool prompt")
    what.add_argument("--response-tokens", type=int, metavar="T", help="mean tokens of a response")
    what.add_argument("--train-length", type=int, metavar="T", help="training sequences are cut at T tokens")
    what.add_argument("--seed-sft-rows", type=int, metavar="ROWS", help="SFT seed rows every policy trains on")
    what.add_argument("--judge-rows", type=int, metavar="ROWS", help="judge triplets the judge trains on")
    what.add_argument("--distill", type=int, metavar="M", help="M: round-1 responses the judge self-distils on")
    what.add_argument("--epochs", type=float, help="passes over a policy training set")
    where = parser.add_argument_group("where it runs (default: 1 CPU node of 2 cores; with --paper, 512 H100s)")
    kind = where.add_mutually_exclusive_group()
    kind.add_argument("--gpus", type=int, metavar="COUNT", help="GPUs of the cluster")
    kind.add_argument("--cpu-nodes", type=int, metavar="COUNT", help="CPU nodes of the cluster")
    where.add_argument("--gpu", choices=sorted(GPUS), help="the GPU model of --gpus (default: h100)")
    where.add_argument("--cores-per-node", type=int, metavar="C", help="cores of each CPU node (default: 2)")
    where.add_argument("--throughputs", action="append", default=[], metavar="FILE",
                       help="a benchmark's JSON output (--out FILE of vllm_vs_transformers.py, judge_throughput.py "
                       "or base_model_cost.py): its measured rates replace the defaults; repeatable")
    where.add_argument("--assume", action="append", default=[], metavar="KEY=VALUE",
                       help="set any other assumption by name, e.g. --assume response_tokens=800 --assume "
                       "train_mfu=0.5 --assume decode_tokens_per_s=50 (every name: docs/plan.md)")
    parser.add_argument("--per-round", action="store_true", help="one row per stage of every round")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


# ---- inputs ----------------------------------------------------------------------------------------

def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: {what} is not JSON ({getattr(e, 'msg', e)})") from None


def model_config(spec: str) -> tuple[dict[str, Any], str]:
    """The config.json of a built-in (built into the cache once, as a run would) or of a folder."""
    if spec.startswith("builtin:"):
        from alma.checkpoints import resolve_model

        folder = resolve_model(spec)
    else:
        folder = Path(spec).expanduser()
        if folder.is_file() and folder.name == "config.json":
            folder = folder.parent
    data = _read_json(folder / "config.json", "the model's config")
    if not isinstance(data, dict):
        raise ConfigError(f"{folder / 'config.json'}: not a model config (a JSON object)")
    return data, str(folder / "config.json")


def _seed_sizes(cfg: AlmaConfig) -> tuple[int, int]:
    """SFT rows a policy trains on and judge triplets the judge trains on: the seed_rows slices where set,
    else the seed sets' sizes (the judge's training split: all but judge.holdout_fraction)."""
    from alma import seedsets
    from alma.core.seeds import read_judge, read_sft

    rules = cfg.seeds.rules()
    sft = cfg.train.seed_rows
    if sft is None:
        sft = seedsets.SFT_PROMPTS if seedsets.is_builtin(cfg.seed_sft) else \
            len(read_sft(seedsets.seed_file(cfg.seed_sft, "sft"), rules).examples)
    judge = cfg.judge_train.seed_rows
    if judge is None:
        triplets = seedsets.JUDGE_PROMPTS * seedsets.TRIPLETS_PER_PROMPT if seedsets.is_builtin(cfg.seed_judge) \
            else len(read_judge(seedsets.seed_file(cfg.seed_judge, "judge"), rules).examples)
        judge = max(1, round(triplets * (1 - cfg.judge.holdout_fraction)))
    return sft, judge


def _rows_cap(train) -> int | None:
    return train.max_steps * train.batch_size * train.grad_accum * train.num_workers if train.max_steps > 0 else None


def workload_from_config(cfg: AlmaConfig, params: float, embed_dim: int | None) -> Workload:
    """A preset's run as counts. Lengths are the decoding caps (max_new_tokens): upper bounds."""
    sft_rows, judge_rows = _seed_sizes(cfg)
    extra = {"embed_dim": embed_dim} if embed_dim else {}
    return Workload(
        params=params, responses_per_prompt=cfg.round.responses_per_prompt,
        prompts_per_round=cfg.round.prompts_per_round, rounds=cfg.rounds,
        pool_attempts=cfg.pool.attempts, seed_sft_rows=sft_rows, judge_rows=judge_rows,
        distill_responses=cfg.judge.distill_responses, sft_models=len(cfg.sft_seeds), few_shot=cfg.pool.few_shot,
        clusters=cfg.pool.clusters, kmeans_epochs=cfg.pool.kmeans_epochs,
        prompt_tokens=min(cfg.pool.sampling.max_new_tokens, cfg.pool.embed_max_tokens),
        response_tokens=cfg.round.sampling.max_new_tokens, train_length=cfg.train.max_length,
        judge_length=cfg.judge_train.max_length, epochs=cfg.train.epochs, judge_epochs=cfg.judge_train.epochs,
        train_rows_cap=_rows_cap(cfg.train), judge_rows_cap=_rows_cap(cfg.judge_train),
        warm_training=cfg.cluster.warm_training, **extra)


def _assignments(items: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--assume {item!r}: expected KEY=VALUE, e.g. --assume response_tokens=800")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@dataclasses.dataclass
class Inputs:
    model: str  # what the size was read from, in words
    workload: Workload
    cluster: Cluster
    paper_cluster: Cluster | None  # --paper: the paper's own cluster, for the comparison


def _rates(kind: str, gpu: str, cores: int, params: float, files: list[tuple[Measured, float]],
           settings: list[tuple[str, str]]) -> Rates:
    """Per-device rates at `params`: the defaults, then each benchmark file's, then --assume."""
    if kind == "gpu":
        spec = GPUS[gpu]
        for key, value in settings:
            if key in _names(GpuSpec):
                spec = assume(spec, key, value)
        rates = gpu_rates(spec, params)
    else:
        rates = cpu_rates(cores).at(params)
    for measured, measured_params in files:
        rates = apply_measured(rates, measured, measured_params, kind, cores)
    for key, value in settings:
        if key in _names(Rates) and key != "params":
            rates = assume(rates, key, value)
    return rates


def _size(spec: str) -> tuple[float, int]:
    config, where = model_config(spec)
    return float(llama_params(config, where)), hidden_size(config, where)


def _workload(args: argparse.Namespace, settings: list[tuple[str, str]]) -> tuple[str, str | None, Workload]:
    """What runs, in words, the model spec it was sized from (None: a bare count), and as counts."""
    if args.paper and (args.config or args.overrides):
        raise ConfigError("--paper is the paper's setting; drop --config/--set (change single numbers with flags "
                          "or --assume)")
    spec: str | None = args.model
    embed_dim: int | None = None
    if args.params is not None:
        params, model = args.params, f"{args.params:g} parameters"
    elif args.model:
        (params, embed_dim), model = _size(args.model), args.model
    elif args.paper:
        params, model = float(LLAMA3_8B_PARAMS), "Llama-3-8B (the paper's base)"
    if args.paper:
        work = dataclasses.replace(paper_workload(), params=params, **({"embed_dim": embed_dim} if embed_dim else {}))
    else:
        cfg = load_config(args.preset, args.config, args.overrides)
        if args.params is None and not args.model:
            spec = model = cfg.model.base
            params, embed_dim = _size(spec)
        work = workload_from_config(cfg, params, embed_dim)
    changes = {field: getattr(args, flag) for flag, field in FLAGS.items() if getattr(args, flag) is not None}
    if "pool_prompts" in changes:
        changes["pool_attempts"] = None  # the pool's size given: its requests follow from the keep rate
    work = dataclasses.replace(work, **changes)
    for key, value in settings:
        if key in _names(Workload):
            work = assume(work, key, value)
    return model, spec, work


def _measured(paths: list[str], spec: str | None, kind: str) -> list[tuple[Measured, float]]:
    """Each benchmark file's rates, with the size of the model it measured (checked against the cluster's
    kind first: sizing a built-in may build it)."""
    found = []
    for path in paths:
        measured = read_benchmark(_read_json(Path(path), "the benchmark output"), path, spec)
        check_kind(measured, kind)
        try:
            size = _size(measured.model)[0]
        except AlmaError as e:
            raise ConfigError(f"{path}: the model it measured, {measured.model!r}, has no size alma plan can read "
                              f"({e})") from None
        found.append((measured, size))
    return found


def build_inputs(args: argparse.Namespace) -> Inputs:
    settings = _assignments(args.assume)
    unknown = [key for key, _ in settings
               if key not in _names(Workload) | _names(Rates) | _names(GpuSpec) or key == "params"]
    if unknown:
        raise ConfigError(f"--assume {unknown[0]}: no such assumption (the names are in docs/plan.md; the model "
                          "size is --params)")
    # The flags' own checks first: sizing a built-in model may build it (a 135M conversion: 20 s).
    check_count("params", args.params)
    for flag, field in FLAGS.items():
        check_count(field, getattr(args, flag))
    kind, count = "cpu", 1
    if args.gpus is not None:
        kind, count = "gpu", args.gpus
    elif args.cpu_nodes is not None:
        count = args.cpu_nodes
    elif args.paper and args.cores_per_node is None:
        kind, count = "gpu", PAPER_REPORTED.devices
    if kind == "cpu" and args.gpu:
        raise ConfigError("--gpu names the GPU model of --gpus")
    if kind == "gpu" and args.cores_per_node is not None:
        raise ConfigError("--cores-per-node is for --cpu-nodes")
    gpu = args.gpu or PAPER_REPORTED.gpu
    cores = args.cores_per_node if args.cores_per_node is not None else CPU_REFERENCE_CORES
    if count < 1 or cores < 1:
        flag = "--gpus" if kind == "gpu" else "--cpu-nodes" if count < 1 else "--cores-per-node"
        raise ConfigError(f"{flag} must be at least 1, got {count if count < 1 else cores}")

    model, spec, work = _workload(args, settings)
    files = _measured(args.throughputs, spec, kind)
    cluster = Cluster(kind, count, _rates(kind, gpu, cores, work.params, files, settings),  # type: ignore[arg-type]
                      cores, GPUS[gpu].name if kind == "gpu" else "")
    paper_cluster = None
    if args.paper:
        paper_gpu = PAPER_REPORTED.gpu
        # Measured rates carry over only from a GPU plan: a CPU benchmark says nothing about an H100.
        paper_cluster = cluster if (kind, count, gpu) == ("gpu", PAPER_REPORTED.devices, paper_gpu) else Cluster(
            "gpu", PAPER_REPORTED.devices, _rates("gpu", paper_gpu, cores, work.params,
                                                  files if kind == "gpu" else [], settings),
            name=GPUS[paper_gpu].name)
    return Inputs(model, work, cluster, paper_cluster)


# ---- output ----------------------------------------------------------------------------------------

def _count(value: float) -> str:
    """1.2k, 34M, 5.6B: token counts at a glance."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}" if value else "-"


def _hours(value: float) -> str:
    return _rate(value) if value >= 0.01 or value == 0 else "<0.01"


def _wall(seconds: float) -> str:
    return f"{seconds / 86400:.2f} days" if seconds >= 2 * 86400 else format_duration(seconds)


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _rates_line(label: str, rates: Rates) -> str:
    return (f"{label} at {_count(rates.params)} parameters: decode {_rate(rates.decode_tokens_per_s)} tok/s, prefill "
            f"{_rate(rates.prefill_tokens_per_s)} tok/s, training {_rate(rates.train_tokens_per_s)} tok/s, start-up "
            f"{rates.training_startup_s:g} s a training ({rates.warm_training_startup_s:g} s on a warm worker group), "
            f"{rates.stream_startup_s:g} s a stream")


def _comparison_line(plan: Plan) -> str:
    c = compare(plan)
    verdict = "within" if c.within else "outside"
    return (f"paper ({c.reported.source}): {c.reported.wording}, {c.reported.device_hours:,.0f} GPU-hours\n"
            f"estimate on {plan.cluster.describe()}: {c.estimate_days:.3g} days ({c.estimate_device_hours:,.0f} "
            f"GPU-hours), {c.ratio:.3g}x the paper's {c.reported.days:g} days: {verdict} the stated factor of "
            f"{c.factor:g} (docs/plan.md: what the estimate leaves out)")


def format_plan(inputs: Inputs, plan: Plan, per_round: bool, paper: Plan | None) -> str:
    w, cluster = inputs.workload, inputs.cluster
    judge = "the base's size" if w.judge_params is None else f"{_count(w.judge_params)} parameters"
    lines = [
        f"alma plan: {inputs.model}, {_count(w.params)} parameters (judge: {judge}); N = {w.responses_per_prompt:,}, "
        f"K = {w.prompts_per_round:,}, R = {w.rounds}; pool {w.pool_size:,} prompts from {w.attempts:,} "
        f"requests, {min(w.clusters, w.pool_size):,} clusters; on {cluster.describe()}",
        f"tokens per item: prompt {w.prompt_tokens}, response {w.response_tokens}, training row {w.row_tokens}, "
        f"judgment {w.judgment_tokens}, judge row {w.judge_row_tokens}",
        _rates_line(f"per {'GPU' if cluster.kind == 'gpu' else 'node'}", plan.policy_rates)
        + (f" (judge: prefill {_rate(plan.judge_rates.prefill_tokens_per_s)} tok/s)" if w.judge_params else ""),
        f"rates from: {plan.policy_rates.source}",
        "",
    ]
    rows: list[Stage] = plan.stages if per_round else plan.groups()
    header = ("stage", "tokens", "FLOPs", cluster.unit, "wall time", "share")
    table = [header] + [(s.name, _count(s.tokens), f"{s.flops:.2e}", _hours(s.device_hours), _wall(s.wall_s),
                         f"{s.share:.1%}") for s in rows]
    table.append(("total", _count(plan.tokens), f"{plan.flops:.2e}", _hours(plan.device_hours), _wall(plan.wall_s),
                  "100.0%"))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    for i, row in enumerate(table):
        if i == len(table) - 1:
            lines.append(rule)
        lines.append("  ".join(cell.ljust(widths[0]) if j == 0 else cell.rjust(widths[j]) for j, cell in enumerate(row)))
        if i == 0:
            lines.append(rule)
    top, kinds = plan.dominant(), plan.by_kind()
    total = plan.device_hours or 1.0
    lines.append(f"dominant: {top.name}, {top.share:.0%} of the {cluster.unit}; by kind of work: "
                 + ", ".join(f"{kind} {kinds[kind] / total:.0%}" for kind in KINDS))
    if paper is not None:
        lines.append(_comparison_line(paper))
    return "\n".join(lines) + "\n"


def _stage_dict(s: Stage) -> dict[str, Any]:
    return {"name": s.name, "group": s.group, "work": s.work, "tokens": s.tokens, "prefill_tokens": s.prefill_tokens,
            "decode_tokens": s.decode_tokens, "train_tokens": s.train_tokens, "flops": s.flops, "wall_s": s.wall_s,
            "device_hours": s.device_hours, "device_hours_by_kind": s.hours_by_kind, "share": s.share}


def plan_dict(inputs: Inputs, plan: Plan, paper: Plan | None) -> dict[str, Any]:
    w = plan.workload
    derived = {"pool_prompts": w.pool_size, "pool_attempts": w.attempts, "judge_params": w.judge_size,
               "row_tokens": w.row_tokens, "judgment_tokens": w.judgment_tokens,
               "judge_row_tokens": w.judge_row_tokens, "request_tokens": w.request_tokens}
    top = plan.dominant()
    out: dict[str, Any] = {
        "model": inputs.model,
        "workload": {**dataclasses.asdict(w), **derived},
        "cluster": {"kind": plan.cluster.kind, "devices": plan.cluster.devices, "gpu": plan.cluster.name or None,
                    "cores_per_node": plan.cluster.cores_per_node if plan.cluster.kind == "cpu" else None,
                    "unit": plan.cluster.unit},
        "rates": {"policy": dataclasses.asdict(plan.policy_rates), "judge": dataclasses.asdict(plan.judge_rates)},
        "stages": [_stage_dict(s) for s in plan.stages],
        "groups": [_stage_dict(g) for g in plan.groups()],
        "total": {"tokens": plan.tokens, "flops": plan.flops, "device_hours": plan.device_hours,
                  "wall_s": plan.wall_s, "wall_days": plan.wall_s / 86400},
        "dominant": {"group": top.name, "share": top.share},
        "by_kind": plan.by_kind(),
    }
    if paper is not None:
        c = compare(paper)
        out["paper"] = {"wording": c.reported.wording, "source": c.reported.source, "days": c.reported.days,
                        "gpus": c.reported.devices, "gpu": c.reported.gpu, "device_hours": c.reported.device_hours,
                        "estimate_days": c.estimate_days, "estimate_device_hours": c.estimate_device_hours,
                        "ratio": c.ratio, "factor": c.factor, "within": c.within}
    return out


def plan_main(args: argparse.Namespace) -> int:
    inputs = build_inputs(args)
    plan = estimate(inputs.workload, inputs.cluster)
    paper = None
    if inputs.paper_cluster is not None:
        paper = plan if inputs.paper_cluster is inputs.cluster else estimate(inputs.workload, inputs.paper_cluster)
    if args.json:
        print(json.dumps(plan_dict(inputs, plan, paper), indent=2))
    else:
        print(format_plan(inputs, plan, args.per_round, paper), end="")
    return 0
