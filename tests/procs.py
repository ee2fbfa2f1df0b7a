"""Which processes a test started and where they listen: used by the loopback-only checks."""

from __future__ import annotations

import subprocess

from alma.core import process_tree


def descendants(pid: int) -> set[int]:
    """`pid` and every process below it (Ray daemons are grandchildren of the test process)."""
    return {pid, *process_tree.descendants(pid)}


def alive(pid: int) -> bool:
    """Whether `pid` runs: a zombie (ended, not yet reaped by a parent that may itself be gone) does not."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def listeners(pids: set[int]) -> list[str]:
    """Local addresses of the TCP listening sockets owned by any of `pids`, as `ss` prints them."""
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
    addresses = []
    for line in lines:
        owners = {int(f.split("=")[1]) for word in line.split() for f in word.split(",") if f.startswith("pid=")}
        if owners & pids:
            addresses.append(line.split()[3])
    return addresses


def on_loopback(address: str) -> bool:
    """True for IPv4 loopback, its IPv4-mapped IPv6 form, and IPv6 loopback."""
    return address.startswith(("127.", "[::ffff:127.", "[::1]"))
