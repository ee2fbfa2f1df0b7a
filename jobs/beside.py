"""Work that runs beside step 0's trainings when the cluster has room for it: the prompt pool.

The pool is written by the base model and embedded by it; it needs nothing that step 0 trains. On a cluster
with room for the generator's replica and the pool's actors beside step 0's worker groups, the driver starts
it on a thread of its own as step 0's first wave starts (jobs.initial_models.train_together decides, from
the nodes' free resources: core.packing.waves_beside) and waits for it once step 0 is done. Where holding
its resources would delay a training, it runs after step 0, as it always did.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class Beside:
    """One piece of background work: what it holds at its peak (`bundles`, Ray resource bundles) and the
    function that does it. `start` runs it on a daemon thread (Ctrl-C in the driver must not wait for it);
    `result` waits for it and returns its value, or raises what it raised."""

    def __init__(self, label: str, bundles: Sequence[Mapping[str, float]], work: Callable[[], Any]):
        self.label = label
        self.bundles = [dict(b) for b in bundles]
        self._work = work
        self._thread: threading.Thread | None = None
        self._value: Any = None
        self._error: BaseException | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.label} was started already")

        def run() -> None:
            try:
                self._value = self._work()
            except BaseException as e:  # handed to the thread that calls result()
                self._error = e

        self._thread = threading.Thread(target=run, name=f"alma-beside-{self.label}", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        if self._thread is None:
            raise RuntimeError(f"{self.label} was never started")
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)  # short waits: a signal reaches the driver's thread between them
        if self._error is not None:
            raise self._error
        return self._value
