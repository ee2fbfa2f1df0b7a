"""The run and the stage runner every stage goes through.

Each stage folder (paths in core.run_layout) exists only once committed (see core.manifest), so a restarted
run skips it. With an out_dir URI (s3://, gs://) the run folder is a local working copy: the config, each
committed stage (manifest last) and the top-level files are uploaded as they are written, and a fresh copy
resumes by downloading the committed stages it is asked for (core.storage).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml
from pydantic import ValidationError

from alma.config import AlmaConfig, dump_config, stored_config_changes
from alma.core.console import say
from alma.core.errors import RunStateError
from alma.core.manifest import (
    Manifest,
    StageWriter,
    check_committed,
    commit_stage,
    read_manifest,
    write_json_atomic,
    write_text_atomic,
)
from alma.core.run_layout import RunLayout
from alma.core.storage import RemoteRunFolder, is_uri
from alma.jobs.apps import Apps
from alma.jobs.progress import stage_running

T = TypeVar("T")


def _config_hash(text: str) -> str:
    """The hash a stored config.yaml's stages were committed under (of its text when it no longer loads)."""
    try:
        return AlmaConfig.model_validate(yaml.safe_load(text) or {}).fingerprint()
    except (yaml.YAMLError, ValidationError):
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class RunContext:
    cfg: AlmaConfig
    run_dir: Path
    config_hash: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # stage label -> seconds
    round_seconds: dict[int, float] = field(default_factory=dict)  # round -> seconds of its stages
    remote: RemoteRunFolder | None = None  # the run folder at cfg.out_dir when that is a URI
    force: bool = False  # keep stages committed under another config (`alma run --force`)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage label -> rows that failed for good
    apps: Apps = field(init=False)  # the Serve apps the stages stream through, deployed on first need

    def __post_init__(self) -> None:
        # Absolute, because checkpoint paths are handed to replicas and workers with other cwds.
        self.run_dir = self.run_dir.resolve()
        self.config_hash = self.cfg.fingerprint()
        self.apps = Apps(self.cfg)
        if self.cfg.out_dir and is_uri(self.cfg.out_dir):
            self.remote = RemoteRunFolder(self.cfg.out_dir, self.run_dir)

    @property
    def location(self) -> str:
        """Where the run lives, as the user named it: the URI, or the local folder."""
        return self.remote.uri if self.remote else str(self.run_dir)

    def stage_location(self, stage_dir: Path) -> str:
        """How replicas, Ray Data actors and Ray Train workers on any node name a committed stage: its path,
        or for a run at a URI the stage's URI, which they resolve with core.storage.local_stage (the
        driver's node reads its working copy; a node without a shared disk fetches the stage)."""
        return self.remote.uri_of(stage_dir.resolve()) if self.remote else str(stage_dir.resolve())

    @property
    def train_storage(self) -> str:
        """Ray Train's storage (worker checkpoints): the run's ray_train/ folder, at the run's URI for a run
        there, so that a worker group restarted on another node finds its checkpoints without a shared disk."""
        return self.remote.uri_of(self.layout.ray_train) if self.remote else str(self.layout.ray_train)

    @property
    def layout(self) -> RunLayout:
        """Where each stage's folder and each file of the run is (core.run_layout)."""
        return RunLayout(self.run_dir)

    def open(self, force: bool = False) -> None:
        """Create the run folder, or check that an existing one was made with the same config."""
        config_path = self.layout.config
        if self.remote is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.remote.download(config_path)  # the URI's copy decides, whatever the working copy holds
        self.force = force
        changes = stored_config_changes(config_path.read_text(), self.cfg) if config_path.exists() else []
        if changes and not force:
            shown = "; ".join(changes[:4]) + (f"; and {len(changes) - 4} more" if len(changes) > 4 else "")
            raise RunStateError(
                f"{self.location} holds a run with another config ({shown}); resume it with the same config, "
                "or pass --out NEW_FOLDER (or --force to keep its committed stages anyway)")
        kept: list[Path] = []
        if changes:  # forced: stages committed under the old config stay, so keep that config beside them
            old = config_path.read_text()
            kept.append(config_path.with_name(f"config.{_config_hash(old)}.yaml"))
            write_text_atomic(kept[0], old)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.layout.logs.mkdir(exist_ok=True)
        write_text_atomic(config_path, dump_config(self.cfg))
        self._publish(*kept, config_path)
        handler = logging.FileHandler(self.layout.driver_log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logging.getLogger("alma").addHandler(handler)
        logging.getLogger("alma").setLevel(logging.INFO)

    def _publish(self, *paths: Path) -> None:
        """Copy top-level files of the working copy, and the driver log so far, to the run's URI."""
        if self.remote is None:
            return
        for path in paths:
            self.remote.upload(path)
        log_file = self.layout.driver_log
        if log_file.is_file():
            self.remote.upload(log_file)

    def write_json(self, path: Path, data: Any) -> Path:
        """Write a top-level file of the run folder (layout.seeds, layout.summary) atomically, and publish it."""
        write_json_atomic(path, data)
        self._publish(path)
        return path

    def _sync(self, stage_dir: Path) -> Manifest | None:
        """Bring the working copy and the URI into step for one stage; its manifest if committed."""
        done = check_committed(stage_dir, self.config_hash, any_config=self.force)
        if self.remote is None:
            return done
        if done is None:
            if self.remote.download_stage(stage_dir) is not None:
                say(f"{stage_dir.relative_to(self.run_dir)}: fetched from {self.remote.uri}")
            return check_committed(stage_dir, self.config_hash, any_config=self.force)
        if self.remote.read_manifest(stage_dir) is None:  # committed here, but its upload was cut short
            self.remote.upload_stage(stage_dir)
        return done

    def committed(self, stage_dir: Path) -> bool:
        """Whether the stage is committed (here, or at the run's URI, which brings it here)."""
        return self._sync(stage_dir) is not None

    def stage(self, stage_dir: Path, label: str, build: Callable[[StageWriter], None], kind: str = "",
              round: int | None = None) -> Manifest:
        """Run `build` into a temporary folder and commit it, unless it was committed before. `kind` (one of
        core.manifest.STAGE_KINDS) and `round` go into the manifest, for status, report and eval to read."""
        done = self._sync(stage_dir)
        if done is not None:
            say(f"{label}: already committed ({done.rows} rows{self._errors(label, stage_dir, done)}), skipped")
            self._timed(label, round, done.seconds)
            return done
        say(f"{label}: started")
        with stage_running(self.run_dir, label), \
                commit_stage(stage_dir, label, self.config_hash, kind, round) as writer:
            build(writer)
        manifest = read_manifest(stage_dir)
        assert manifest is not None
        if self.remote is not None:
            self.remote.upload_stage(stage_dir)
            self._publish()
        self._timed(label, round, manifest.seconds)
        rows = "" if manifest.rows is None else f", {manifest.rows} rows"
        say(f"{label}: committed in {manifest.seconds:.1f}s{rows}{self._errors(label, stage_dir, manifest)}")
        return manifest

    def _timed(self, label: str, round: int | None, seconds: float) -> None:
        self.timings[label] = seconds
        if round is not None:
            self.round_seconds[round] = self.round_seconds.get(round, 0.0) + seconds

    def _errors(self, label: str, stage_dir: Path, manifest: Manifest) -> str:
        """Record a stage's permanently failed rows for the summary; the text its progress line gets."""
        count = manifest.info.get("errors")
        if not count:
            return ""
        table = stage_dir / manifest.info["errors_file"]
        self.errors[label] = {"errors": count, "rows_lost": manifest.info.get("rows_lost", count),
                              "table": str(table)}
        return f", {count} failed for good (see {table})"
