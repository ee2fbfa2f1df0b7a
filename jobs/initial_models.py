"""Step 0: the base model copied into the run folder, then the two initial SFT models (two training seeds)
and the judge, all fine-tuned from that copy.

The copy is what makes a run folder self-contained: on a cluster, Ray Train workers, Serve replicas and
Ray Data actors on other nodes read every model from the run's storage (a shared volume, or the object
store through each node's working copy), never from the driver node's alma cache.

The judge trains on the judge seed's training split only; the held-out prompts (core.judge_split) are
committed beside it in `judge-split/` for `alma judge eval`.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from alma.config import AlmaConfig, TrainConfig
from alma.core.judge_prompt import judge_messages, judge_target
from alma.core.console import say
from alma.core.judge_split import split_by_prompt
from alma.core.manifest import StageWriter
from alma.core.packing import waves, waves_beside
from alma.core.seeds import JudgeExample, SftExample, load_judge
from alma.jobs.beside import Beside
from alma.jobs.run_context import RunContext
from alma.jobs.training import DATA_FILE, train_sft, training_table, worker_bundle
from alma.jobs.warm_training import current_trainers, shape_key, trainers_in_thread


def seed_sample(examples: list, rows: int | None, seed: int) -> list:
    """`train.seed_rows` of the examples, a seeded sample kept in file order (all of them when None)."""
    if rows is None or rows >= len(examples):
        return list(examples)
    keep = sorted(random.Random(f"seed-rows-{seed}").sample(range(len(examples)), rows))
    return [examples[i] for i in keep]


def sft_rows(examples: list[SftExample], rows: int | None = None, seed: int = 0) -> list[dict]:
    """The SFT seed as training rows: `rows` of them (train.seed_rows), the same sample for every policy."""
    return [{"prompt": e.prompt, "completion": e.response, "source": "seed"}
            for e in seed_sample(examples, rows, seed)]


def judge_rows(examples: list[JudgeExample], rubric: str, answer_prefix: str) -> list[dict]:
    return [{"prompt": judge_messages(e.prompt, e.response, rubric),
             "completion": judge_target(e.score, answer_prefix), "source": "seed"} for e in examples]


def base_stage(ctx: RunContext, resolved: Path) -> Path:
    """Commit base/: the resolved base model's files (hard links where the file system allows, else copies)."""
    out = ctx.layout.base

    def build(w: StageWriter) -> None:
        files = sorted(p for p in resolved.rglob("*") if p.is_file() and _model_file(p.relative_to(resolved)))
        for src in files:
            dest = w.path / src.relative_to(resolved)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dest)  # the cache's built models are never written in place
            except OSError:
                shutil.copy2(src, dest)
        w.info = {"source": str(resolved), "files": len(files)}

    ctx.stage(out, "base model", build, kind="base")
    return out


_PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl")  # alma loads safetensors only: these are not copied


def _model_file(rel: Path) -> bool:
    """Whether a base model's file is copied: not under a hidden folder (.git, .cache), not a pickled
    checkpoint, not a stage manifest."""
    return not any(part.startswith(".") for part in rel.parts) and rel.suffix not in _PICKLED \
        and rel.name != "manifest.json"


def train_settings(cfg: AlmaConfig, judge: bool) -> TrainConfig:
    """The training settings of a policy training, or with `judge` of a judge training."""
    return cfg.judge_train if judge else cfg.train


def train_stage(ctx: RunContext, name: str, base: Path, rows: list[dict], seed: int, judge: bool = False,
                round: int | None = None) -> Path:
    """Commit checkpoints/<name>: the training data, the fine-tuned weights and their metrics."""
    out = ctx.layout.checkpoint(name)

    def build(w: StageWriter) -> None:
        data = w.path / DATA_FILE
        pq.write_table(training_table(rows), data)
        train = train_settings(ctx.cfg, judge)
        metrics = train_sft(name, ctx.stage_location(base), data, w.path, train, seed, ctx.train_storage,
                            ctx.cfg.model.trust_remote_code)
        w.rows = len(rows)
        w.info = {"base": str(base), "seed": seed, "sources": _count_sources(rows), **metrics}

    ctx.stage(out, f"train {name}", build, kind="train", round=round)
    return out


def _count_sources(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["source"]] = counts.get(r["source"], 0) + 1
    return counts


def _triplet_table(examples: list[JudgeExample]) -> pa.Table:
    """Judge triplets in the seed file layout, so that `load_judge` (and `alma judge eval`) reads them back."""
    return pa.table({"prompt": pa.array([e.prompt for e in examples], pa.string()),
                     "response": pa.array([e.response for e in examples], pa.string()),
                     "score": pa.array([e.score for e in examples], pa.int64())})


def judge_split_stage(ctx: RunContext, judge: list[JudgeExample]) -> list[JudgeExample]:
    """Commit judge-split/ (training and held-out triplets); returns the training side, read back from it."""
    out = ctx.layout.judge_split

    def build(w: StageWriter) -> None:
        split = split_by_prompt(judge, ctx.cfg.judge.holdout_fraction, ctx.cfg.seed)
        pq.write_table(_triplet_table(split.train), w.path / ctx.layout.judge_train_file.name)
        pq.write_table(_triplet_table(split.heldout), w.path / ctx.layout.judge_heldout_file.name)
        w.rows = len(judge)
        w.info = {"train": len(split.train), "heldout": len(split.heldout),
                  "heldout_prompts": len({e.prompt for e in split.heldout})}

    ctx.stage(out, "judge split", build, kind="judge-split")
    return load_judge(ctx.layout.judge_train_file)


def initial_models(ctx: RunContext, base: Path, sft: list[SftExample], judge: list[JudgeExample],
                   rubric: str, beside: Beside | None = None) -> tuple[list[Path], Path]:
    """Train sft-1, sft-2 and the judge: at once where the cluster has room for their workers
    (`cluster.concurrent_trainings`, core.packing), one after another where it has not (then as jobs of
    the driver's warm worker group, jobs.warm_training, where it keeps one). `beside` (the prompt pool)
    is started as they start where it fits beside them without delaying any (train_together)."""
    rows = sft_rows(sft, ctx.cfg.train.seed_rows, ctx.cfg.seed)
    judge_train = judge_split_stage(ctx, judge)
    judge_train = seed_sample(judge_train, ctx.cfg.judge_train.seed_rows, ctx.cfg.seed)
    trainings = [Training(f"sft-{i}", rows, seed) for i, seed in enumerate(ctx.cfg.sft_seeds, start=1)]
    trainings.append(Training("judge", judge_rows(judge_train, rubric, ctx.cfg.judge.answer_prefix),
                              ctx.cfg.seed, judge=True))
    paths = train_together(ctx, base, trainings, beside)
    return paths[:-1], paths[-1]


@dataclass(frozen=True)
class Training:
    """One of step 0's trainings: its checkpoint name, rows, seed, and whether it takes judge_train's settings."""

    name: str
    rows: list[dict]
    seed: int
    judge: bool = False


def train_together(ctx: RunContext, base: Path, trainings: list[Training],
                   beside: Beside | None = None) -> list[Path]:
    """Commit each training's checkpoint, in waves of those that fit the cluster's free resources at once;
    the checkpoint paths, in the trainings' order. A training that fails does not stop the others of its
    wave (what they commit is kept for the resume); the first failure is raised once the wave is done.

    `beside` is started before the first wave when its bundles fit beside every wave without changing
    them (core.packing.waves_beside); the waves are then planned on what it leaves. It is not waited for
    here: its owner calls its `result()`. Left unstarted when it does not fit or nothing is left to train."""
    from alma.cluster.resources import free_per_node

    done = {t.name for t in trainings if ctx.committed(ctx.layout.checkpoint(t.name))}
    for t in trainings:
        if t.name in done:
            _train(ctx, base, t)  # says it is committed, skips it
    todo = [t for t in trainings if t.name not in done]
    settings = [train_settings(ctx.cfg, t.judge) for t in todo]
    bundles = [[worker_bundle(train)] * train.num_workers for train in settings]
    groups: list[list[int]] = []
    if todo:
        free, at_most = free_per_node(), ctx.cfg.cluster.concurrent_trainings
        groups = waves(bundles, free, at_most)
        planned = waves_beside(bundles, beside.bundles, free, at_most) if beside is not None else None
        if planned is not None:
            groups = planned
            say(f"{beside.label} beside step 0's trainings (the cluster has room for both; "
                "cluster.overlap_pool=false waits for step 0)")
            beside.start()
    for group in groups:
        if len(group) > 1:
            say("training " + ", ".join(todo[i].name for i in group) + " at once (the cluster has room for "
                "their workers; cluster.concurrent_trainings=1 trains one after another)")
        _run_wave(ctx, base, [todo[i] for i in group])
    return [ctx.layout.checkpoint(t.name) for t in trainings]


def _train(ctx: RunContext, base: Path, t: Training) -> Path:
    return train_stage(ctx, t.name, base, t.rows, t.seed, judge=t.judge)


def warm_pick(ctx: RunContext, wave: list[Training]) -> Training | None:
    """Which training of a wave run at once starts the driver's warm worker group (the others get groups of
    their own): the first of the rounds' worker shape, so that the trainings after step 0 (the distilled
    judge, each round's) find the group up and its workers' imports done; None without a warm group or
    where no training of the wave has that shape."""
    if current_trainers() is None:
        return None
    rounds = shape_key(ctx.cfg.train)
    return next((t for t in wave if shape_key(train_settings(ctx.cfg, t.judge)) == rounds), None)


def _run_wave(ctx: RunContext, base: Path, wave: list[Training]) -> None:
    if len(wave) == 1:
        _train(ctx, base, wave[0])
        return
    # Daemon threads, not an executor's: Ctrl-C in the driver must not wait for a training to finish.
    errors: dict[str, BaseException] = {}
    warm, keep = current_trainers(), warm_pick(ctx, wave)

    def one(t: Training) -> None:
        try:
            with trainers_in_thread(warm if t is keep else None):
                _train(ctx, base, t)
        except BaseException as e:  # handed to the driver's thread below
            errors[t.name] = e

    threads = [threading.Thread(target=one, args=(t,), name=f"alma-train-{t.name}", daemon=True) for t in wave]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)  # short waits: a signal reaches the driver's thread between them
    for t in wave:
        if t.name in errors:
            raise errors[t.name]
