"""`alma judge eval`: how well each judge orders held-out responses, in each scoring mode.

Judges: the base model with a 3-shot judge prompt (shots from the judge seed's training split), the
fine-tuned judge (`checkpoints/judge`), and the self-distilled judge (`checkpoints/judge-distilled`) when
the run has one. Modes: expected, argmax, sampled (core.judge_modes). Each (judge, mode) is scored on
the held-out triplets (`judge-split/heldout.parquet`, which no training stage reads) and measured with
core.judge_metrics; a table is printed and a JSON written (default `<run>/eval/judge_eval.json`).

Engines run in this process, one judge at a time, with no Ray: a few hundred judgments do not need a
cluster, and the numbers are the same as through the Judge deployment (same engine, same code path).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from alma.config import PRESETS, AlmaConfig, load_config
from alma.core.errors import ConfigError, RunStateError
from alma.core.judge_metrics import Scored, judge_metrics
from alma.core.judge_modes import DISTRIBUTION_MODES, SCORING_MODES, from_distribution, judge
from alma.core.judge_prompt import LABELS, few_shot_messages, judge_messages, load_rubric, pick_shots
from alma.core.judge_split import JudgeSplit, split_by_prompt
from alma.core.manifest import read_manifest, write_json_atomic
from alma.core.run_layout import RunLayout
from alma.core.seeds import JudgeExample, bundled, load_judge

BASE, FINE_TUNED, DISTILLED = "base", "judge", "judge-distilled"
JUDGES = (BASE, FINE_TUNED, DISTILLED)
SHOTS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `alma judge eval`."""
    parser.add_argument("--run", metavar="DIR",
                        help="run folder: its config, held-out split and judge checkpoints are used")
    parser.add_argument("--checkpoint", metavar="DIR", help="fine-tuned judge checkpoint (default: the run's)")
    parser.add_argument("--distilled", metavar="DIR",
                        help="self-distilled judge checkpoint (default: the run's, when it has one)")
    parser.add_argument("--heldout", metavar="FILE",
                        help="held-out judge triplets, JSONL or Parquet (default: the run's held-out split; "
                             "without a run, the split a run with this config makes of its judge seed)")
    parser.add_argument("--shots", metavar="FILE",
                        help="triplets the base judge's 3 shots come from, held-out prompts removed (default: "
                             "the training side of the same split)")
    parser.add_argument("--modes", default=",".join(SCORING_MODES),
                        help=f"comma-separated scoring modes (default: {','.join(SCORING_MODES)})")
    parser.add_argument("--judges", help=f"comma-separated judges among {','.join(JUDGES)} (default: every one "
                        "the run or the flags provide; a judge named here must be found)")
    parser.add_argument("--out", metavar="FILE", help="where to write the results (default: <run>/eval/judge_eval.json, or "
                        "./judge_eval.json without a run)")
    parser.add_argument("--preset", choices=PRESETS, default=None, help="configuration when there is no --run")
    parser.add_argument("--config", metavar="FILE", help="YAML file layered over the preset (no --run)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config field, e.g. --set judge.samples=10 (also on a run's config)")


def _choices(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    picked = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in picked if item not in allowed]
    if unknown or not picked:
        raise ConfigError(f"{flag} {text!r}: choose from {', '.join(allowed)}")
    return picked


def _run_config(run: Path, overrides: list[str]) -> AlmaConfig:
    config = run / "config.yaml"
    if not config.is_file():
        raise RunStateError(f"{run} is not a run folder (no config.yaml); pass --run of an `alma run` folder")
    return load_config(None, config, overrides)


def _judge_folders(args: argparse.Namespace, cfg: AlmaConfig, run: Path | None) -> dict[str, Path]:
    """Checkpoint folder per judge, in table order. Without --judges, the ones not found are skipped."""
    from alma.checkpoints import resolve_model

    wanted = _choices(args.judges, JUDGES, "--judges") if args.judges else list(JUDGES)
    explicit = {BASE: cfg.model.base, FINE_TUNED: args.checkpoint, DISTILLED: args.distilled}
    folders: dict[str, Path] = {}
    for name in wanted:
        if explicit[name]:
            folders[name] = resolve_model(explicit[name], trust_remote_code=cfg.model.trust_remote_code)
        elif run is not None and read_manifest(RunLayout(run).checkpoint(name)) is not None:
            folders[name] = RunLayout(run).checkpoint(name)
        elif args.judges:
            raise RunStateError(f"no {name} checkpoint: pass --{'checkpoint' if name == FINE_TUNED else 'distilled'} "
                                "DIR or a --run that trained one")
    return folders


def _default_split(cfg: AlmaConfig, run: Path | None) -> JudgeSplit:
    """The run's committed split, or without a run the split a run with this config makes of its judge seed."""
    if run is None:
        from alma.seedsets import seed_file as resolve_seed_file

        seed_file = resolve_seed_file(cfg.seed_judge, "judge")
        return split_by_prompt(load_judge(seed_file), cfg.judge.holdout_fraction, cfg.seed)
    manifest = read_manifest(RunLayout(run).judge_split)
    if manifest is None or not manifest.info.get("heldout"):
        raise RunStateError(f"{run} has no held-out judge split (judge.holdout_fraction 0, or an older run); "
                            "pass --heldout FILE and --shots FILE")
    return JudgeSplit(load_judge(RunLayout(run).judge_train_file), load_judge(RunLayout(run).judge_heldout_file))


def _triplets(args: argparse.Namespace, cfg: AlmaConfig, run: Path | None) -> tuple[list[JudgeExample],
                                                                                  list[JudgeExample]]:
    """(held-out triplets, the pool the base judge's shots are drawn from): the flags' files, else the split."""
    split = None if args.heldout and args.shots else _default_split(cfg, run)
    heldout = load_judge(args.heldout) if args.heldout else split.heldout
    shots = load_judge(args.shots) if args.shots else split.train
    if not heldout:
        raise RunStateError("no held-out triplets: judge.holdout_fraction is 0; pass --heldout FILE")
    held_prompts = {example.prompt for example in heldout}
    return heldout, [example for example in shots if example.prompt not in held_prompts]


def evaluate(cfg: AlmaConfig, heldout: list[JudgeExample], shots: list[JudgeExample],
             judges: dict[str, Path], modes: list[str]) -> list[dict[str, Any]]:
    """One result per (judge, mode): metrics, missing sampled replies, seconds and the raw scores."""
    from alma.commands.eval_judges import load_model

    rubric = load_rubric(cfg.judge.rubric)
    prefix = cfg.judge.answer_prefix
    examples = pick_shots(shots, SHOTS, cfg.seed) if BASE in judges else []
    results = []
    for name, checkpoint in judges.items():
        engine = load_model(cfg, checkpoint)
        conversations = [
            few_shot_messages(examples, e.prompt, e.response, rubric, prefix) if name == BASE
            else judge_messages(e.prompt, e.response, rubric)
            for e in heldout
        ]
        distributions, distribution_seconds = None, 0.0
        for mode in modes:
            started = time.perf_counter()
            if mode in DISTRIBUTION_MODES:
                # expected and argmax read the same label distribution: one forward pass serves both, and
                # each row reports the seconds of that one pass.
                if distributions is None:
                    distributions = engine.score_distribution(conversations, prefix, LABELS)
                    distribution_seconds = time.perf_counter() - started
                judgments = [from_distribution(d, mode) for d in distributions]
                seconds = distribution_seconds
            else:
                judgments = judge(engine, conversations, prefix, mode, cfg.judge.samples,
                                  cfg.judge.sample_temperature, seed=cfg.seed)
                seconds = time.perf_counter() - started
            metrics = judge_metrics([Scored(e.prompt, e.score, j.score) for e, j in zip(heldout, judgments)])
            results.append({"judge": name, "checkpoint": str(checkpoint), "mode": mode, **asdict(metrics),
                            "missing": sum(j.missing for j in judgments), "seconds": round(seconds, 3),
                            "scores": [j.score for j in judgments]})
        engine.close()  # before the next judge loads: one model (and one vLLM engine) at a time
    return results


def format_table(results: list[dict[str, Any]]) -> str:
    head = (f"{'judge':<16} {'mode':<9} {'pairs':>5} {'pairwise acc':>12} {'ties':>5} {'tie rate':>8} "
            f"{'unscored':>8} {'spearman':>8} {'missing':>7} {'seconds':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        label = "base (3-shot)" if r["judge"] == BASE else r["judge"]
        lines.append(f"{label:<16} {r['mode']:<9} {r['pairs']:>5} {r['pairwise_accuracy']:>12.3f} {r['ties']:>5} "
                     f"{r['tie_rate']:>8.3f} {r['unscored_pairs']:>8} {r['spearman']:>8.3f} {r['missing']:>7} "
                     f"{r['seconds']:>8.1f}")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """NaN (an undefined correlation, a judgment with no parsed sample) as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def judge_eval_main(args: argparse.Namespace) -> int:
    """Run the evaluation the parsed flags describe; user errors raise alma.core.errors subclasses."""
    run = Path(args.run).resolve() if args.run else None
    if run is not None and (args.preset or args.config):
        raise ConfigError("--preset/--config apply without --run only; a run is evaluated with its own config")
    cfg = _run_config(run, args.overrides) if run is not None else load_config(args.preset, args.config,
                                                                               args.overrides)
    modes = _choices(args.modes, SCORING_MODES, "--modes")
    heldout, shots = _triplets(args, cfg, run)
    judges = _judge_folders(args, cfg, run)
    if BASE in judges and not shots:
        raise RunStateError("no triplets left for the base judge's shots once the held-out prompts are removed")
    results = evaluate(cfg, heldout, shots, judges, modes)
    out = Path(args.out) if args.out else (RunLayout(run).judge_eval if run is not None else Path(RunLayout(Path()).judge_eval.name))
    write_json_atomic(out, _json_safe({
        "run": str(run) if run else None, "heldout_triplets": len(heldout),
        "heldout_prompts": len({e.prompt for e in heldout}), "shots": SHOTS, "samples": cfg.judge.samples,
        "sample_temperature": cfg.judge.sample_temperature, "answer_prefix": cfg.judge.answer_prefix,
        "results": results}))
    print(format_table(results))
    print(f"written to {out}")
    return 0

