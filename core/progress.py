"""Progress of a long stage: rows (or steps) done of a total, the rate, the time left, and how often to say so.

On a terminal the line is redrawn in place a few times a second; in a log (a file, a Ray job log, a pipe)
one line is written at most every `log_interval_s` seconds, and none at all for a stage that ends sooner,
so short stages add nothing and long ones add a line every half minute. Pure: the clock is passed in.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

# Seconds between two progress lines in a log (overridable with ALMA_PROGRESS_INTERVAL_S).
LOG_INTERVAL_S = 30.0
# Seconds between two redraws of the progress line on a terminal.
TTY_INTERVAL_S = 0.5
INTERVAL_ENV = "ALMA_PROGRESS_INTERVAL_S"


def log_interval_s(environ: dict[str, str] | None = None) -> float:
    """The log interval: ALMA_PROGRESS_INTERVAL_S when it holds a positive number, else LOG_INTERVAL_S."""
    value = (os.environ if environ is None else environ).get(INTERVAL_ENV, "")
    try:
        seconds = float(value)
    except ValueError:
        return LOG_INTERVAL_S
    return seconds if seconds > 0 and math.isfinite(seconds) else LOG_INTERVAL_S


def format_duration(seconds: float) -> str:
    """4s, 2m05s, 1h02m: short, and exact enough for an estimate."""
    if not math.isfinite(seconds):
        return "?"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_rate(per_second: float, unit: str) -> str:
    """3.1 rows/s, or 12 rows/min when fewer than one a second."""
    if per_second >= 1 or per_second == 0:
        return f"{per_second:.3g} {unit}/s"
    return f"{per_second * 60:.3g} {unit}/min"


@dataclass
class Throttle:
    """True at most once per `interval` seconds; the first time only after `interval` has passed since
    `start` unless `immediate`."""

    interval: float
    start: float
    immediate: bool = False
    _last: float | None = None

    def ready(self, now: float) -> bool:
        since = self._last if self._last is not None else (None if self.immediate else self.start)
        if since is not None and now - since < self.interval:
            return False
        self._last = now
        return True


@dataclass
class Progress:
    """Counts toward `total` (None when unknown) of `unit`s, started at `start` (seconds, any clock).

    The rate is measured from the first count above zero, so the start-up before it (actors starting,
    models loading) does not make the time left look longer than it is; until a second count comes it
    is the average since `start`, and no time left is given.
    """

    label: str
    start: float
    total: int | None = None
    unit: str = "rows"
    done: int = 0
    now: float = 0.0
    _first: tuple[float, int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.now = self.start

    def update(self, done: int, now: float, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        self.done, self.now = max(self.done, done), max(self.now, now)
        if self._first is None and self.done > 0:
            self._first = (self.now, self.done)

    @property
    def elapsed(self) -> float:
        return self.now - self.start

    def _steady_rate(self) -> float | None:
        """Units per second since the first count, once a second one has come."""
        if self._first is None:
            return None
        t0, d0 = self._first
        return (self.done - d0) / (self.now - t0) if self.done > d0 and self.now > t0 else None

    def rate(self) -> float | None:
        """Units per second, or None before anything was counted (the average since `start` until the
        rate since the first count is known)."""
        if self.done <= 0:
            return None
        steady = self._steady_rate()
        if steady is not None:
            return steady
        return self.done / self.elapsed if self.elapsed > 0 else None

    def eta(self) -> float | None:
        """Seconds left at the rate since the first count; None while the total or that rate is unknown
        (the average since `start` holds the start-up and would promise too long a wait)."""
        rate = self._steady_rate()
        if self.total is None or not rate:
            return None
        return max(0, self.total - self.done) / rate

    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)

    def line(self) -> str:
        """`round 1 responses: 12/24 rows (50%), 3.1 rows/s, ETA 4s, elapsed 10s`."""
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        parts = [f"{count} {self.unit}" + (f" ({self.fraction():.0%})" if self.fraction() is not None else "")]
        rate, eta = self.rate(), self.eta()
        if rate is not None:
            parts.append(format_rate(rate, self.unit))
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        parts.append(f"elapsed {format_duration(self.elapsed)}")
        return f"{self.label}: " + ", ".join(parts)

    def as_dict(self) -> dict:
        """What `alma status` shows of a stage while it runs (progress.json)."""
        return {"label": self.label, "unit": self.unit, "done": self.done, "total": self.total,
                "rate": self.rate(), "eta_s": self.eta(), "elapsed_s": round(self.elapsed, 3)}
