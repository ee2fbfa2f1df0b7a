"""Bounded retries with exponential backoff, and isolating the rows a failing call cannot serve.

Ray Data callers (actors/callers.py) send a batch of rows to a Serve deployment in one call. When that
call fails (its replica died, the node went away, the engine raised), `settle` retries it with backoff;
if it still fails, each row is tried alone, so that one row the deployment cannot handle does not take
its whole batch with it. What still fails is returned as a failure with its reason, for the stage's
errors table: never raised past the stage, never dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

REASON_CHARS = 500


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 4  # attempts after the first
    backoff_s: float = 1.0  # wait before the first retry; doubled for each further one
    max_backoff_s: float = 30.0

    def delays(self) -> list[float]:
        return [min(self.backoff_s * 2**i, self.max_backoff_s) for i in range(self.retries)]


@dataclass(frozen=True)
class Outcome(Generic[V]):
    """What one row got: its value, or the reason its last attempt failed; and the attempts it took."""

    value: V | None
    error: str | None
    attempts: int

    @property
    def ok(self) -> bool:
        return self.error is None


def reason(error: BaseException) -> str:
    """One line saying why a call failed: the underlying error's type and the first line of its message.

    Ray wraps an exception raised inside a replica in a RayTaskError whose text holds the remote
    traceback; its `cause` is the original exception.
    """
    cause = getattr(error, "cause", None)
    error = cause if isinstance(cause, BaseException) else error
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def call_with_retries(call: Callable[[], V], policy: RetryPolicy, first: Callable[[], V] | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> Outcome[V]:
    """`call()` until it returns, at most 1 + policy.retries times, waiting policy.delays() in between.

    `first`, when given, is the first attempt instead of `call` (e.g. collecting a request that was sent
    earlier, concurrently with others).
    """
    attempts, error = 0, ""
    for delay in [0.0, *policy.delays()]:
        if delay:
            sleep(delay)
        attempt = first if (first is not None and attempts == 0) else call
        attempts += 1
        try:
            return Outcome(attempt(), None, attempts)
        except Exception as e:  # any failure of the call is retried; what stays failing is reported
            error = reason(e)
    return Outcome(None, error, attempts)


def settle(keys: Sequence[K], call: Callable[[Sequence[K]], Sequence[V]], policy: RetryPolicy,
           first: Callable[[], Sequence[V]] | None = None,
           sleep: Callable[[float], None] = time.sleep) -> list[Outcome[V]]:
    """One outcome per key of `call(keys)` (which returns one value per key, in order).

    The whole call is retried per `policy`; if it still fails and holds several keys, each key is tried
    alone once more, so the keys that can be served are, and only the others fail.
    """
    group = call_with_retries(lambda: call(keys), policy, first, sleep)
    if group.ok:
        values = list(group.value or [])
        if len(values) != len(keys):
            raise ValueError(f"the call returned {len(values)} results for {len(keys)} rows")
        return [Outcome(v, None, group.attempts) for v in values]
    if len(keys) == 1:
        return [group]
    out: list[Outcome[V]] = []
    for key in keys:
        alone = call_with_retries(lambda k=key: call([k])[0], RetryPolicy(retries=0), sleep=sleep)
        out.append(Outcome(alone.value, alone.error and f"{alone.error} (alone; with its batch: {group.error})",
                           group.attempts + 1))
    return out
