"""The driver: runs the whole recipe as one Ray job (`alma run`, or `ray job submit -- alma run`).

Seeds are validated before anything is written or started, so bad input costs nothing. Then: a local Ray
(or the cluster in RAY_ADDRESS), Serve apps for the generators and the judge, step 0 (initial models),
step 1 (prompt pool), and R rounds, with the judge's self-distillation between round 1's responses and
its judging. Each stage commits atomically; rerunning the same command resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from alma.config import AlmaConfig
from alma.core.console import say
from alma.core.errors import RunStateError
from alma.core.judge_prompt import load_rubric
from alma.core.run_layout import RunLayout
from alma.core.seeds import file_fingerprint, read_judge, read_sft
from alma.jobs.rounds import RoundResult
from alma.jobs.run_context import RunContext
from alma.jobs.seed_data import report_drops
from alma.jobs.throughput import run_throughput
from alma.seedsets import provenance_of, seed_file


def format_table(results: list[RoundResult]) -> str:
    head = f"{'round':>5} {'prompts':>7} {'responses':>9} {'mean score (all)':>16} {'mean score (best)':>17} " \
           f"{'train rows':>10} {'seconds':>8}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.round:>5} {r.prompts:>7} {r.responses:>9} {r.mean_score_all:>16.3f} "
                     f"{r.mean_score_best:>17.3f} {r.train_examples:>10} {r.seconds:>8.1f}")
    return "\n".join(lines)


def check_run_folder(run_dir: Path, seeds: dict, force: bool) -> None:
    """Refuse a run folder that is a file, or a resume whose seed files changed content since (unless forced):
    the config names the seed files, not what they hold."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunStateError(f"{run_dir} is a file, not a run folder; pass --out with a folder")
    try:
        before = json.loads(RunLayout(run_dir).seeds.read_text())
    except (OSError, ValueError):
        return
    changed = [f"{name} ({seeds[name]['path']})" for name in seeds
               if before.get(name, {}).get("sha256") not in (None, seeds[name]["sha256"])]
    if changed and not force:
        raise RunStateError(f"{run_dir} was started from other seed data: {', '.join(changed)} changed since; "
                            "restore the files, pass --out NEW_FOLDER, or --force to keep its committed stages")


def run(cfg: AlmaConfig, force: bool = False, finish: Callable[[RunContext], object] | None = None) -> dict:
    """Run (or resume) the configured ALMA run; returns the summary also written to summary.json. `finish` is
    called with the run once it is done: `alma run` writes the report there (commands/report.py), a layer
    above this one."""
    from alma.cluster.local import start_ray, stop_ray
    from alma.cluster.serve_apps import delete_apps
    from alma.jobs.distill import self_distill
    from alma.jobs.initial_models import base_stage, initial_models
    from alma.jobs.beside import Beside
    from alma.jobs.pool import build_pool, pool_bundles
    from alma.jobs.rounds import draw_and_sample, judge_and_train
    from alma.jobs.warm_training import warm_trainers
    from alma.checkpoints import resolve_model

    sft_file, judge_file = seed_file(cfg.seed_sft, "sft"), seed_file(cfg.seed_judge, "judge")
    seed_sets = {"sft": read_sft(sft_file, cfg.seeds.rules()), "judge": read_judge(judge_file, cfg.seeds.rules())}
    seed_sft, seed_judge = seed_sets["sft"].examples, seed_sets["judge"].examples
    rubric = load_rubric(cfg.judge.rubric)
    # Every check of the user's input comes before the run folder is made: bad input writes nothing.
    base = resolve_model(cfg.model.base, trust_remote_code=cfg.model.trust_remote_code).resolve()
    seeds = {"sft": {"path": str(sft_file), "sha256": file_fingerprint(sft_file), "rows": len(seed_sft)},
             "judge": {"path": str(judge_file), "sha256": file_fingerprint(judge_file), "rows": len(seed_judge)}}
    for name, path in (("sft", sft_file), ("judge", judge_file)):
        if provenance_of(path):  # a built-in set: where its text came from, its licence, who wrote what
            seeds[name]["provenance"] = provenance_of(path)
    check_run_folder(cfg.run_dir(), seeds, force)
    started = time.time()
    ctx = RunContext(cfg, cfg.run_dir())
    ctx.apps.rubric = rubric  # the judge's scale, as read (and checked) above
    ctx.open(force=force)
    ctx.write_json(ctx.layout.seeds, seeds)
    report_drops(ctx, seed_sets)  # the rejects files go in the run folder, so only once it exists
    where = ctx.location if ctx.remote is None else f"{ctx.location} (working copy {ctx.run_dir})"
    say(f"run folder {where} ({len(seed_sft)} SFT seed rows, {len(seed_judge)} judge seed rows)")
    ray_ctx = start_ray(ctx.run_dir, cfg.cluster.address, cfg.cluster.host, cfg.cluster.num_cpus)
    try:
        base = base_stage(ctx, base)
        results = []
        # Every training that does not run beside another runs on a warm worker group
        # (jobs/warm_training.py), which makes room for the replicas and actor pools that would not fit
        # beside it.
        with warm_trainers(ctx.train_storage, cfg.cluster.warm_training):
            seed_prompts = [e.user_prompt for e in seed_sft]

            # The pool beside step 0 runs on a thread of its own, where room for it was planned; each
            # stage deploys the app it streams through when it runs (jobs/apps.py).
            pool = (Beside("prompt pool", pool_bundles(cfg), lambda: build_pool(ctx, base, seed_prompts))
                    if cfg.cluster.overlap_pool else None)
            sft_paths, judge_path = initial_models(ctx, base, seed_sft, seed_judge, rubric, beside=pool)
            if pool is not None and pool.started:
                pool_file = pool.result()
            else:
                pool_file = build_pool(ctx, base, seed_prompts)
            for r in range(1, cfg.rounds + 1):
                responses = draw_and_sample(ctx, r, pool_file, sft_paths)
                if r == 1:
                    # Distilled on round 1's responses before they are judged, then fixed for every round.
                    judge_path = self_distill(ctx, responses, judge_path, rubric)
                results.append(judge_and_train(ctx, r, base, responses, judge_path, seed_sft))
    finally:
        if not ray_ctx.started_local:  # a cluster that outlives the run: its replicas are released
            delete_apps()
        stop_ray(ray_ctx)
    summary = {"run_dir": str(ctx.run_dir), "config_hash": ctx.config_hash, "base": str(base),
               "judge": str(judge_path),
               "rounds": [{**asdict(r), "checkpoint": str(r.checkpoint)} for r in results],
               "stage_seconds": ctx.timings, "wall_seconds": round(time.time() - started, 1),
               "final_checkpoint": str(results[-1].checkpoint), "errors": ctx.errors,
               "throughput": run_throughput(ctx.run_dir)}
    ctx.write_json(ctx.layout.summary, summary)
    say("done\n" + format_table(results))
    for label, failed in ctx.errors.items():
        say(f"{label}: {failed['errors']} rows failed for good ({failed['rows_lost']} results missing); "
            f"their reasons are in {failed['table']}")
    say(f"final model: {results[-1].checkpoint}  (summary: {ctx.layout.summary})")
    if finish is not None:
        finish(ctx)
    return json.loads(json.dumps(summary))
