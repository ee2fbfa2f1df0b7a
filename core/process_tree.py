"""The processes below this one, read from /proc, and ending them by process id.

A local Ray started by `alma run` is a tree under the driver (GCS, raylet, its agents and workers). When
an interrupted run does not unwind in time (Ray Data waiting for in-flight calls to finish before it lets
go), the CLI ends that tree itself: only processes this one started, never other users' Ray.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process readable in /proc."""
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # The command name (field 2) may hold spaces and parentheses: the parent pid follows its last ')'.
        out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), parents before children."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def kill_descendants(pid: int | None = None, sig: int = signal.SIGKILL) -> list[int]:
    """Send `sig` to every process below `pid` (default: this process); returns the pids signalled. The tree
    is read once before any signal, so processes orphaned by the first kills (re-parented to init) are
    still reached."""
    targets = descendants(os.getpid() if pid is None else pid)
    sent = []
    for p in targets:
        try:
            os.kill(p, sig)
            sent.append(p)
        except (ProcessLookupError, PermissionError):
            continue
    return sent
