"""Ctrl-C and SIGTERM end an alma command within a few seconds, leaving no process it started behind.

The first signal raises where the command is (KeyboardInterrupt, or Terminated for SIGTERM), so its
`finally` blocks run: a stage's temporary folder is removed, an engine is closed, a local Ray is shut down.
Some of that can block for minutes: Ray Data, interrupted mid-stream, waits for the calls in flight to
finish before it lets go of its actors (a transformers replica may be a minute into a batch). So the first
signal also starts a grace timer; if the command is still running when it fires, or on a second signal,
every process this one started (a local Ray's GCS, raylet, agents and workers; a vLLM engine's workers) is
killed by process id and the command exits at once. Committed stages are never touched (they were renamed
into place whole), and a stage left half-written is a temporary folder the next run removes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

from alma.core.process_tree import kill_descendants

GRACE_S = 5.0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so that its `finally` blocks run as they do for Ctrl-C."""


_installed = threading.Event()
_stopping = threading.Event()
_grace_s = GRACE_S


def _hard_stop(code: int) -> None:
    print("alma: interrupted; ending the processes this command started (committed stages are kept, run the "
          "same command to resume)", file=sys.stderr, flush=True)
    kill_descendants()
    os._exit(code)


def _handler(signum: int, frame: object) -> None:
    code = 128 + signum  # what a shell reports for a program ended by the signal
    if _stopping.is_set():  # the second signal: no more waiting
        _hard_stop(code)
    _stopping.set()
    timer = threading.Timer(_grace_s, _hard_stop, args=(code,))
    timer.daemon = True
    timer.start()
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def install(grace_s: float = GRACE_S) -> Callable[[], None]:
    """Handle SIGINT and SIGTERM as above (main thread only: elsewhere signals cannot be set); returns what
    puts the previous handlers back (main() also runs inside other programs: the tests)."""
    global _grace_s
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    _grace_s = grace_s
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _installed.set()

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _installed.clear()
        _stopping.clear()

    return restore


def reassert() -> None:
    """Put the handlers back after a library replaced them (`ray.init` sets its own SIGTERM handler, which
    exits without the grace timer); a no-op unless `install` is in force, and outside the main thread."""
    if _installed.is_set() and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _handler)
