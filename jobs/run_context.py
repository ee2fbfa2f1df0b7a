"""The run folder and the stage runner every stage goes through.

Layout of a run folder (everything needed to understand a run):
    config.yaml            the resolved config          seeds.json     seed file fingerprints
    summary.json           per-round table, timings     logs/          driver log
    checkpoints/<name>/    sft-1, sft-2, judge, round-<r> (weights, training data, metrics, manifest)
    pool/                  the prompt pool               rounds/<r>/    draw, responses, scores, best
Each stage folder exists only once committed (see core.manifest), so a restarted run skips it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import yaml
from pydantic import ValidationError

from alma.config import AlmaConfig, dump_config
from alma.core.errors import RunStateError
from alma.core.manifest import (
    Manifest,
    StageWriter,
    check_committed,
    commit_stage,
    read_manifest,
    write_text_atomic,
)

log = logging.getLogger("alma")
T = TypeVar("T")


def say(message: str) -> None:
    """Progress line for the terminal and the Ray job log (one line per event, never a redraw)."""
    print(f"[alma {time.strftime('%H:%M:%S')}] {message}", flush=True)
    log.info(message)


@dataclass
class RunContext:
    cfg: AlmaConfig
    run_dir: Path
    config_hash: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Absolute, because checkpoint paths are handed to replicas and workers with other cwds.
        self.run_dir = self.run_dir.resolve()
        self.config_hash = self.cfg.fingerprint()

    def checkpoint_dir(self, name: str) -> Path:
        return self.run_dir / "checkpoints" / name

    def round_dir(self, r: int) -> Path:
        return self.run_dir / "rounds" / f"{r:02d}"

    def open(self, force: bool = False) -> None:
        """Create the run folder, or check that an existing one was made with the same config."""
        config_path = self.run_dir / "config.yaml"
        if config_path.exists() and not force:
            try:
                old_hash = AlmaConfig.model_validate(yaml.safe_load(config_path.read_text()) or {}).fingerprint()
            except (yaml.YAMLError, ValidationError):
                old_hash = "unreadable"
            if old_hash != self.config_hash:
                raise RunStateError(
                    f"{self.run_dir} holds a run with another config; resume it with the same config, "
                    "or pass --out NEW_FOLDER (or --force to keep its committed stages anyway)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        write_text_atomic(config_path, dump_config(self.cfg))
        handler = logging.FileHandler(self.run_dir / "logs" / "driver.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logging.getLogger("alma").addHandler(handler)
        logging.getLogger("alma").setLevel(logging.INFO)

    def stage(self, stage_dir: Path, label: str, build: Callable[[StageWriter], None]) -> Manifest:
        """Run `build` into a temporary folder and commit it, unless it was committed before."""
        done = check_committed(stage_dir, self.config_hash)
        if done is not None:
            say(f"{label}: already committed ({done.rows} rows), skipped")
            self.timings[label] = done.seconds
            return done
        say(f"{label}: started")
        with commit_stage(stage_dir, label, self.config_hash) as writer:
            build(writer)
        manifest = read_manifest(stage_dir)
        assert manifest is not None
        self.timings[label] = manifest.seconds
        rows = "" if manifest.rows is None else f", {manifest.rows} rows"
        say(f"{label}: committed in {manifest.seconds:.1f}s{rows}")
        return manifest
