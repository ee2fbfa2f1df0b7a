"""`alma status RUN`: where a run stands, from its folder alone (no Ray, no config of the caller), also
while a driver is writing it.

Committed stages are the folders holding a manifest (core.manifest: the manifest lands with the folder's
one rename, so a folder seen half-written has none yet and is not counted). The stage running now is in
`progress.json` (jobs.progress), with its progress and the driver's pid; a `.tmp-*` folder whose process
is gone is what a killed driver left behind. Nothing here writes to the run folder.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from alma.core.errors import RunStateError
from alma.core.progress import format_duration, format_rate
from alma.core.run_layout import RunLayout, committed_stages, read_json



@dataclass
class RunStatus:
    run_dir: Path
    state: str  # running, finished, stopped, not started
    detail: str  # one line: what runs now, or why the run is not running
    rounds: int | None  # R from config.yaml
    current_round: int | None
    rounds_done: int
    started_at: float | None
    elapsed_s: float | None
    stages: list[dict[str, Any]] = field(default_factory=list)
    running: dict[str, Any] | None = None  # progress.json while a stage runs
    leftovers: list[str] = field(default_factory=list)  # .tmp-* folders of a process that is gone

    def as_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "state": self.state, "detail": self.detail, "rounds": self.rounds,
                "current_round": self.current_round, "rounds_done": self.rounds_done,
                "started_at": self.started_at, "elapsed_s": self.elapsed_s, "stages": self.stages,
                "running": self.running, "leftovers": self.leftovers}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _tmp_folders(run_dir: Path) -> list[tuple[Path, int | None]]:
    """`.tmp-<stage>-<pid>` folders (stages being written, or left by a killed driver) and their pids."""
    out = []
    layout = RunLayout(run_dir)
    for parent in (run_dir, layout.checkpoints, *(rd.root for rd in layout.rounds())):
        for tmp in sorted(parent.glob(".tmp-*")) if parent.is_dir() else []:
            pid = tmp.name.rsplit("-", 1)[-1]
            out.append((tmp, int(pid) if pid.isdigit() else None))
    return out


def _rounds(run_dir: Path) -> int | None:
    config = RunLayout(run_dir).config
    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    rounds = data.get("rounds") if isinstance(data, dict) else None
    return rounds if isinstance(rounds, int) else None


def _stage_folder(tmp: Path, run_dir: Path) -> str:
    """The stage folder a `.tmp-<name>-<pid>` folder becomes, relative to the run folder."""
    return str(tmp.relative_to(run_dir).parent / tmp.name.removeprefix(".tmp-").rsplit("-", 1)[0])


def run_status(run_dir: Path, now: float | None = None) -> RunStatus:
    """Read the run folder and say where the run stands."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunStateError(f"{run_dir}: no such run folder")
    if not RunLayout(run_dir).config.is_file():
        raise RunStateError(f"{run_dir}: not a run folder (no config.yaml)")
    now = time.time() if now is None else now
    stages = committed_stages(run_dir)
    progress = read_json(RunLayout(run_dir).progress)
    progress = progress if isinstance(progress, dict) else None
    summary = read_json(RunLayout(run_dir).summary)
    rounds = _rounds(run_dir)
    here = socket.gethostname()
    tmp = _tmp_folders(run_dir)

    driver_pid = progress.get("pid") if progress else None
    same_host = progress is None or progress.get("host") == here
    driver_alive = bool(driver_pid) and same_host and _pid_alive(int(driver_pid))
    alive_tmp = [t for t, pid in tmp if pid is not None and _pid_alive(pid)]
    leftovers = [str(t.relative_to(run_dir)) for t, pid in tmp if t not in alive_tmp]

    rounds_of = [s["round"] for s in stages if s["round"] is not None]
    rounds_of += [r for r in (RunLayout(run_dir).round_of(run_dir / _stage_folder(t, run_dir)) for t in alive_tmp)
                  if r is not None]
    # A round is done once its model is trained (the last stage of a round, SFT or DPO).
    done_rounds = {s["round"] for s in stages if s["round"] is not None and s["kind"] == "train"}

    running = progress if progress and progress.get("state") == "running" else None
    if driver_alive or (not same_host and running) or (progress is None and alive_tmp):
        state = "running"
        if running:
            # Several entries when trainings overlap (step 0's), each with its own time and progress.
            entries = [{**entry, "updated_at": running.get("updated_at")} for entry in running.get("running") or []]
            detail = "; ".join(_running_line(entry, now) for entry in entries or [running])
        elif progress and progress.get("last_stage"):
            detail = f"between stages (last committed: {progress['last_stage']})"
        else:
            detail = "a stage is being written (" + ", ".join(str(t.relative_to(run_dir)) for t in alive_tmp) + ")"
        if not same_host and progress:
            detail += f" (driver pid {driver_pid} on {progress.get('host')}; as of " \
                      f"{format_duration(now - float(progress.get('updated_at') or now))} ago)"
    elif summary is not None and (rounds is None or len(summary.get("rounds") or []) >= rounds):
        state, detail = "finished", f"final checkpoint {summary.get('final_checkpoint')}"
    elif stages or progress:
        state = "stopped"
        what = progress.get("stage") or progress.get("last_stage") if progress else None
        failed = progress.get("error") if progress and progress.get("state") == "failed" else None
        detail = (f"the driver (pid {driver_pid}) is not running" if driver_pid else "no driver is running") + \
            (f"; it failed in {what} ({failed})" if failed else f"; last stage: {what}" if what else "") + \
            f"; `alma run --resume {run_dir}` continues it"
    else:
        state, detail = "not started", "no stage committed yet"

    starts = [s["committed_at"] - s["seconds"] for s in stages if s["committed_at"]]
    if progress and progress.get("started_at"):
        starts.append(float(progress["started_at"]))
    started_at = min(starts) if starts else None
    if started_at is None:
        elapsed = None
    elif state == "running":
        elapsed = now - started_at
    else:
        ends = [s["committed_at"] for s in stages] + [float(progress.get("updated_at") or 0) if progress else 0]
        elapsed = max(ends) - started_at
    current = max(rounds_of) if rounds_of else None
    return RunStatus(run_dir, state, detail, rounds, current, len(done_rounds), started_at, elapsed,
                     [{k: v for k, v in s.items() if k != "info"} for s in stages], running, leftovers)


def _running_line(progress: dict[str, Any], now: float) -> str:
    line = f"{progress.get('stage')} for {format_duration(now - float(progress.get('started_at') or now))}"
    p = progress.get("progress")
    if p:
        count = f"{p['done']}/{p['total']}" if p.get("total") is not None else f"{p['done']}"
        line += f": {count} {p.get('unit', 'rows')}"
        if p.get("total"):
            line += f" ({p['done'] / p['total']:.0%})"
        if p.get("rate"):
            line += f", {format_rate(p['rate'], p.get('unit', 'rows'))}"
        if p.get("eta_s") is not None:
            line += f", ETA {format_duration(p['eta_s'])}"
        line += f" (as of {format_duration(now - float(progress.get('updated_at') or now))} ago)"
    return line


def format_status(status: RunStatus) -> str:
    lines = [f"run      {status.run_dir}",
             f"state    {status.state}: {status.detail}"]
    if status.current_round is not None:
        of = f" of {status.rounds}" if status.rounds is not None else ""
        lines.append(f"round    {status.current_round}{of} ({status.rounds_done} done)")
    else:
        lines.append("round    none yet" + (f" ({status.rounds} configured)" if status.rounds is not None else ""))
    if status.elapsed_s is not None:
        stage_time = sum(s["seconds"] for s in status.stages)
        lines.append(f"elapsed  {format_duration(status.elapsed_s)} since the first stage started "
                     f"({format_duration(stage_time)} in committed stages)")
    lines.append(f"stages   {len(status.stages)} committed")
    if status.stages:
        width = max(len(s["label"]) for s in status.stages)
        lines.append(f"  {'stage':<{width}} {'rows':>7} {'seconds':>8}  committed")
        for s in status.stages:
            rows = "-" if s["rows"] is None else str(s["rows"])
            at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["committed_at"])) if s["committed_at"] else "-"
            lines.append(f"  {s['label']:<{width}} {rows:>7} {s['seconds']:>8.1f}  {at}")
    for left in status.leftovers:
        lines.append(f"left over: {left} (an interrupted stage's partial work; the next run removes it)")
    return "\n".join(lines)


def status_main(run_dir: str, as_json: bool = False) -> int:
    status = run_status(Path(run_dir))
    if as_json:
        print(json.dumps(status.as_dict(), indent=2, default=str))
    else:
        print(format_status(status))
    return 0
