"""Ctrl-C and SIGTERM end a command within the grace time even when its unwinding blocks, and the processes
it started go with it (core.interrupts, core.process_tree)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from procs import alive

from alma.core.process_tree import descendants, kill_descendants

# A command whose cleanup blocks, as Ray Data's does when interrupted mid-stream: it waits for ever in a
# `finally`. It started a child (standing in for a local Ray's raylet) that has a child of its own.
STUCK = textwrap.dedent("""
    import subprocess, sys, time
    from alma.core import interrupts
    restore = interrupts.install(grace_s=1.0)
    # Not on the command's pipes: the test reads them to the end, which must not wait for these.
    child = subprocess.Popen(["sh", "-c", "sleep 120 & sleep 120"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    print(child.pid, flush=True)
    try:
        time.sleep(120)
    finally:
        if sys.argv[1] == "stuck":
            while True:
                time.sleep(1)
""")


def _start(mode: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", STUCK, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    child = int(proc.stdout.readline())
    deadline = time.time() + 10
    while len(descendants(proc.pid)) < 3 and time.time() < deadline:  # sh and its two sleeps
        time.sleep(0.05)
    return proc, child


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_blocked_unwind_ends_after_the_grace_time_with_its_processes(sig, code):
    proc, child = _start("stuck")
    below = descendants(proc.pid)
    assert child in below and len(below) == 3
    started = time.time()
    proc.send_signal(sig)
    assert proc.wait(timeout=15) == code
    assert time.time() - started < 5, "the grace time is 1 s"
    assert "ending the processes this command started" in proc.stderr.read()
    time.sleep(0.2)
    assert not any(alive(p) for p in below), "a process the command started outlived it"


def test_a_second_signal_does_not_wait_for_the_grace_time():
    proc, _ = _start("stuck")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    started = time.time()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 130 and time.time() - started < 0.9


def test_an_unwind_that_finishes_in_time_exits_as_usual():
    proc, child = _start("clean")
    below = descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    # Python's own ending for an uncaught KeyboardInterrupt (its traceback, then death by SIGINT): the
    # grace timer killed nothing.
    assert proc.wait(timeout=15) == -signal.SIGINT
    err = proc.stderr.read()
    assert "KeyboardInterrupt" in err and "ending the processes" not in err
    assert all(alive(p) for p in below)
    kill_descendants(child)
    os.kill(child, signal.SIGKILL)


def test_kill_descendants_reaches_grandchildren_and_nothing_else():
    outer = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    deadline = time.time() + 10
    while len(descendants(outer.pid)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    below = descendants(outer.pid)
    assert len(below) == 2
    assert sorted(kill_descendants(outer.pid)) == sorted(below)
    assert outer.wait(timeout=10) is not None
    assert os.getpid() not in below
