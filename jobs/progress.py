"""Progress of the stage the driver is running: printed (core.progress decides how often) and kept in the
run folder's `progress.json`, which `alma status` reads.

A stage's work happens elsewhere (Ray Data actors, Serve replicas, Ray Train workers), so the driver
watches what that work leaves behind: the rows in the Parquet files Ray Data has finished writing, or the
step count a training worker writes to a small file. Nothing here blocks or slows the stage: a watcher is
a daemon thread that polls once a second, and a watcher that fails stops watching, never the stage.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pyarrow.parquet as pq

from alma.core.manifest import write_json_atomic
from alma.core.progress import TTY_INTERVAL_S, Progress, Throttle, log_interval_s
from alma.core.run_layout import RunLayout

log = logging.getLogger("alma")

POLL_S = 1.0
# Seconds between two writes of progress.json while a stage runs.
FILE_INTERVAL_S = 2.0


@dataclass(frozen=True)
class _Stage:
    run_dir: Path
    label: str
    started_at: float


_current: contextvars.ContextVar[_Stage | None] = contextvars.ContextVar("alma_stage", default=None)


def _state(run_dir: Path, **fields) -> None:
    """Rewrite progress.json; a run folder that cannot take it (read-only, gone) only loses the status."""
    try:
        write_json_atomic(RunLayout(run_dir).progress, {"pid": os.getpid(), "host": socket.gethostname(),
                                                    "updated_at": time.time(), **fields})
    except OSError as e:
        log.debug("progress.json: %s", e)


class _Board:
    """The stages running in each run folder, several at once when trainings overlap (jobs.initial_models),
    and what progress.json says about them: the first one started under "stage"/"started_at"/"progress" (as
    a single stage always was), every one of them under "running"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Path, dict[str, dict]] = {}  # run folder -> label -> its entry
        self._failed: dict[Path, dict] = {}  # run folder -> the first stage that failed while others ran

    def start(self, stage: _Stage) -> None:
        with self._lock:
            self._running.setdefault(stage.run_dir, {})[stage.label] = {
                "stage": stage.label, "started_at": stage.started_at, "progress": None}
            self._write(stage.run_dir)

    def update(self, stage: _Stage, progress: dict) -> None:
        with self._lock:
            entry = self._running.get(stage.run_dir, {}).get(stage.label)
            if entry is not None:
                entry["progress"] = progress
                self._write(stage.run_dir)

    def end(self, stage: _Stage, error: str | None) -> None:
        with self._lock:
            running = self._running.get(stage.run_dir, {})
            running.pop(stage.label, None)
            if error is not None:
                self._failed.setdefault(stage.run_dir, {"stage": stage.label, "started_at": stage.started_at,
                                                        "error": error})
            if running:
                self._write(stage.run_dir)
                return
            self._running.pop(stage.run_dir, None)
            failed = self._failed.pop(stage.run_dir, None)
            if failed is not None:
                _state(stage.run_dir, state="failed", **failed)
            else:
                _state(stage.run_dir, state="idle", last_stage=stage.label, finished_at=time.time())

    def _write(self, run_dir: Path) -> None:
        entries = list(self._running[run_dir].values())
        _state(run_dir, state="running", **entries[0], running=entries)


_board = _Board()


@contextmanager
def stage_running(run_dir: Path, label: str) -> Iterator[None]:
    """Mark `label` as a stage running in `run_dir` (progress.json) for the duration of the block."""
    stage = _Stage(run_dir, label, time.time())
    token = _current.set(stage)
    _board.start(stage)
    try:
        yield
    except BaseException as e:
        _board.end(stage, type(e).__name__)
        raise
    else:
        _board.end(stage, None)
    finally:
        _current.reset(token)


def current_label(default: str) -> str:
    stage = _current.get()
    return stage.label if stage is not None else default


class Reporter:
    """Feeds counts into a Progress and says them: redrawn on a terminal, a line per interval in logs."""

    def __init__(self, label: str, total: int | None, unit: str, tty: bool | None = None,
                 clock: Callable[[], float] = time.time, write: Callable[[str], None] | None = None):
        from alma.core.console import say

        now = clock()
        self._stage = _current.get()
        # Elapsed counts from the stage's start (a stage may deploy or read before its work streams).
        self.progress = Progress(label, min(now, self._stage.started_at) if self._stage else now, total, unit)
        self.tty = sys.stdout.isatty() if tty is None else tty
        self._clock, self._say = clock, say
        self._write = write or (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
        self._log = Throttle(log_interval_s(), now)
        self._screen = Throttle(TTY_INTERVAL_S, now, immediate=True)
        self._file = Throttle(FILE_INTERVAL_S, now, immediate=True)
        self._drawn = False

    def update(self, done: int, total: int | None = None) -> None:
        now = self._clock()
        self.progress.update(done, now, total)
        if self._log.ready(now):
            if self.tty:
                log.info(self.progress.line())
            else:
                self._say(self.progress.line())
        if self.tty and self._screen.ready(now):
            self._write(f"\r\x1b[K[alma {time.strftime('%H:%M:%S')}] {self.progress.line()}")
            self._drawn = True
        if self._stage is not None and self._file.ready(now):
            _board.update(self._stage, self.progress.as_dict())

    def close(self) -> None:
        if self._drawn:  # leave the terminal's line empty for the stage's next line
            self._write("\r\x1b[K")
            self._drawn = False


@contextmanager
def watch(poll: Callable[[], tuple[int, int | None]], label: str | None = None, total: int | None = None,
          unit: str = "rows", every: float = POLL_S) -> Iterator[Reporter]:
    """Poll `poll()` -> (done, total or None) every `every` seconds in a daemon thread while the block runs."""
    reporter = Reporter(label or current_label("progress"), total, unit)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                done, known = poll()
            except Exception as e:  # a watcher never fails the stage it watches
                log.debug("progress of %s: %s", reporter.progress.label, e)
                return
            reporter.update(done, known)

    thread = threading.Thread(target=loop, name="alma-progress", daemon=True)
    thread.start()
    try:
        yield reporter
    finally:
        stop.set()
        thread.join(timeout=5)
        reporter.close()


class ParquetRows:
    """Rows in the complete Parquet files under a folder: files still being written have no footer yet and
    are counted once they do. Each file's footer is read once."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._rows: dict[Path, int] = {}

    def __call__(self) -> int:
        if self.folder.is_dir():
            for f in self.folder.rglob("*.parquet"):
                if f not in self._rows:
                    try:
                        self._rows[f] = pq.read_metadata(f).num_rows
                    except (OSError, ValueError):
                        pass  # not complete yet
        return sum(self._rows.values())


@contextmanager
def watch_rows(folder: Path, total: int, label: str | None = None) -> Iterator[Reporter]:
    """Progress of a Ray Data stream writing `total` result rows as Parquet files into `folder`."""
    count = ParquetRows(folder)
    label = label or current_label(f"writing {folder.parent.name}")  # outside a stage: benchmarks, tests
    with watch(lambda: (count(), None), label, total, "rows") as reporter:
        yield reporter


def steps_file(output: Path) -> Path:
    """Where a training writing its model into `output` keeps its step count: beside that folder (the
    workers write `output` already, so both sides reach it), outside the stage that commits it."""
    return output.parent / f".steps-{output.name}.json"


def write_steps(path: Path, done: int, total: int | None) -> None:
    """Written by a training worker after each optimizer step (core.manifest's atomic write)."""
    write_json_atomic(path, {"done": done, "total": total})


def read_steps(path: Path) -> tuple[int, int | None]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0, None
    return int(data.get("done") or 0), data.get("total")


def step_callback(path: Path):
    """A transformers TrainerCallback that writes the step count to `path` (rank 0 of a Ray Train run)."""
    from transformers import TrainerCallback

    class _Steps(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            write_steps(path, state.global_step, state.max_steps or None)

        def on_step_end(self, args, state, control, **kwargs):
            write_steps(path, state.global_step, state.max_steps or None)

    return _Steps()
