"""The one map of a run folder: every path a stage writes or a command reads, named once.

    config.yaml            the resolved config          seeds.json     seed file fingerprints, provenance
    summary.json           per-round table, timings     progress.json  what the driver is doing now
    logs/driver.log        the driver's log             seeds/         rejects-*.jsonl (seeds.drop_invalid)
    judge-split/           judge seed: train / held-out judge-distill/  the judge's labels for distillation
    pool/                  the prompt pool (raw/, prompts.parquet); pool-embeddings/, pool-clusters/
    checkpoints/<name>/    sft-1, sft-2, judge, judge-distilled, round-<r> (weights, training data, manifest)
    rounds/<rr>/           draw/, responses/, scores/, best/, pairs/ (dpo); rr zero-padded: 01, 02
    ray/, ray_train/       a local Ray cluster's temp folder; Ray Train's worker checkpoints
    report.html, report/   `alma report`               eval/          model_eval.json, judge_eval.json

Each stage folder exists only once committed (core.manifest), so a restarted run skips it. Stages, the
driver and the commands (status, report, eval) all take their paths from here; a path is never joined by
hand elsewhere, so that renaming a folder is one edit.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alma.core.manifest import MANIFEST

# Folders of a run that hold no stages: Ray's own files, Ray Train's scratch, logs, what the commands write.
NOT_STAGES = {"ray", "ray_train", "logs", "report", "eval"}


@dataclass(frozen=True)
class RoundLayout:
    """Round r's stage folders."""

    number: int
    root: Path

    @property
    def draw(self) -> Path:
        return self.root / "draw"

    @property
    def draw_file(self) -> Path:
        """The drawn prompts (prompt_id, prompt, cluster), one Parquet file."""
        return self.draw / "draw.parquet"

    @property
    def responses(self) -> Path:
        return self.root / "responses"

    @property
    def scores(self) -> Path:
        return self.root / "scores"

    @property
    def best(self) -> Path:
        return self.root / "best"

    @property
    def best_file(self) -> Path:
        """Best-of-N: one row per prompt, the response the judge scored highest."""
        return self.best / "best.parquet"

    @property
    def pairs(self) -> Path:
        """round.training=dpo: the preference pairs (chosen = best, rejected = another response)."""
        return self.root / "pairs"

    @property
    def pairs_file(self) -> Path:
        return self.pairs / "pairs.parquet"


@dataclass(frozen=True)
class RunLayout:
    """Paths inside one run folder (local: a URI run's working copy is a local folder too)."""

    root: Path

    # ---- top-level files ----------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    def config_snapshot(self, config_hash: str) -> Path:
        """The config a run folder held before `alma run --force` replaced it, kept under its hash."""
        return self.root / f"config.{config_hash}.yaml"

    @property
    def seeds(self) -> Path:
        return self.root / "seeds.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def progress(self) -> Path:
        return self.root / "progress.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def driver_log(self) -> Path:
        return self.logs / "driver.log"

    @property
    def ray_dir(self) -> Path:
        """A local Ray cluster's temp folder (sessions, logs) and the auth token of the run."""
        return self.root / "ray"

    @property
    def ray_train(self) -> Path:
        """Ray Train's storage: each training's worker checkpoints, for restarts after a worker dies."""
        return self.root / "ray_train"

    def rejects(self, kind: str) -> Path:
        """Seed rows set aside by seeds.drop_invalid, for `kind` "sft" or "judge"."""
        return self.root / "seeds" / f"rejects-{kind}.jsonl"

    # ---- step 0 -----------------------------------------------------------------------------------
    @property
    def judge_split(self) -> Path:
        return self.root / "judge-split"

    @property
    def judge_train_file(self) -> Path:
        return self.judge_split / "train.parquet"

    @property
    def judge_heldout_file(self) -> Path:
        return self.judge_split / "heldout.parquet"

    @property
    def distill_labels(self) -> Path:
        return self.root / "judge-distill"

    @property
    def base(self) -> Path:
        """The base model, copied into the run folder: every node reads it from the run's storage."""
        return self.root / "base"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / name

    # ---- the prompt pool --------------------------------------------------------------------------
    @property
    def pool(self) -> Path:
        return self.root / "pool"

    @property
    def pool_raw(self) -> Path:
        """The base model's few-shot generations, before filtering (streamed part files)."""
        return self.pool / "raw"

    @property
    def pool_file(self) -> Path:
        return self.pool / "prompts.parquet"

    @property
    def pool_embeddings(self) -> Path:
        return self.root / "pool-embeddings"

    @property
    def pool_clusters(self) -> Path:
        return self.root / "pool-clusters"

    # ---- rounds -----------------------------------------------------------------------------------
    @property
    def rounds_dir(self) -> Path:
        return self.root / "rounds"

    def round(self, r: int) -> RoundLayout:
        return RoundLayout(r, self.rounds_dir / f"{r:02d}")

    def rounds(self) -> list[RoundLayout]:
        """Every round folder present, in order (committed or not: read each stage's manifest to know)."""
        if not self.rounds_dir.is_dir():
            return []
        numbers = sorted(int(p.name) for p in self.rounds_dir.iterdir() if p.is_dir() and p.name.isdigit())
        return [self.round(r) for r in numbers]

    def round_of(self, folder: Path) -> int | None:
        """The round a stage folder belongs to (rounds/<rr>/..., checkpoints/round-<r>), else None. For a
        folder not yet committed (status) and for manifests written before they recorded `round`."""
        try:
            parts = folder.relative_to(self.root).parts
        except ValueError:
            return None
        if len(parts) >= 2 and parts[0] == self.rounds_dir.name and parts[1].isdigit():
            return int(parts[1])
        if len(parts) == 2 and parts[0] == self.checkpoints.name and parts[1].startswith("round-") \
                and parts[1][6:].isdigit():
            return int(parts[1][6:])
        return None

    def kind_of(self, folder: Path) -> str:
        """The stage kind (core.manifest.STAGE_KINDS) of a stage folder by where it is, "" if none: for
        manifests written before they recorded `kind`."""
        fixed = {self.base: "base", self.judge_split: "judge-split", self.pool: "pool",
                 self.pool_embeddings: "pool-embeddings", self.pool_clusters: "pool-clusters",
                 self.distill_labels: "distill-labels"}
        if folder in fixed:
            return fixed[folder]
        if folder.parent == self.checkpoints:
            return "train"
        if self.round_of(folder) is not None and folder.parent.parent == self.rounds_dir:
            return folder.name if folder.name in ("draw", "responses", "scores", "best", "pairs") else ""
        return ""

    # ---- what the commands write -------------------------------------------------------------------
    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def report_dir(self) -> Path:
        """The report's plots (PNG), beside report.html."""
        return self.root / "report"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def model_eval(self) -> Path:
        return self.eval_dir / "model_eval.json"

    @property
    def judge_eval(self) -> Path:
        return self.eval_dir / "judge_eval.json"


def committed_stages(run_dir: Path) -> list[dict[str, Any]]:
    """Every committed stage: label, folder (relative), kind, round, rows, seconds, committed_at, info; in
    commit order."""
    layout = RunLayout(run_dir)
    stages = []
    for root, dirs, files in os.walk(run_dir):
        here = Path(root)
        if here == run_dir:
            dirs[:] = [d for d in dirs if d not in NOT_STAGES]
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if MANIFEST in files and here != run_dir:
            dirs[:] = []  # a stage's own subfolders hold no further stages
            manifest = read_json(here / MANIFEST)
            if isinstance(manifest, dict) and "stage" in manifest:
                # Manifests of older runs have no kind or round: the layout knows them by their folder.
                stages.append({"label": manifest["stage"], "folder": str(here.relative_to(run_dir)),
                               "kind": manifest.get("kind") or layout.kind_of(here),
                               "round": manifest.get("round") or layout.round_of(here),
                               "rows": manifest.get("rows"), "seconds": manifest.get("seconds") or 0.0,
                               "committed_at": manifest.get("committed_at") or 0.0,
                               "info": manifest.get("info") or {}})
    return sorted(stages, key=lambda s: s["committed_at"])


def read_json(path: Path) -> Any:
    """The file's JSON, or None when it is missing or caught mid-write (every writer replaces files whole,
    but a reader on another machine of a shared file system may still see a torn copy)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
