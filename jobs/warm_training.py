"""Warm training: one Ray Train worker group kept for the trainings that run one after another, each of
them a job it runs in turn, so that only the first pays Ray Train's start-up.

A training started on its own (`TorchTrainer.fit`) spends most of its wall time before its first step on
a small model: the controller and worker processes start, and each worker imports torch, transformers,
datasets and TRL (20 s of a 2-core machine at load, measured), then loads the model; after the last step
the worker group is torn down. A run trains step 0's models where the cluster has no room for them at
once, then the distilled judge and one model per round, one after another, mostly with one worker shape.
So the driver keeps, per shape (workers, each worker's resource bundle, failure budget), one
`TorchTrainer` whose train function is a loop over a job board (a Ray actor): it takes the next job (the
same loop function and config a cold `fit` would run), runs it, and waits for the next. Its workers keep their imports; a job loads its own model and data, as before.

Faults are Ray Train's, as for a cold training: a worker or node lost mid-job restarts the worker group
(`max_failures`), and the restarted loop takes the unfinished job again, resuming from its last checkpoint
(every checkpoint carries the job that wrote it, jobs.training.JOB_FILE, so one job never resumes from
another's). On a one-worker group a job whose loop raises is reported to the driver as that stage's error
and the worker group waits for the next job. On a group of several workers an error is Ray Train's, as for
a training on its own: a surviving worker sees a lost peer as an error of its own (a collective's
connection reset), which must restart the group, not fail the job. A worker group Ray Train gives up on
fails the job in flight, and the next training starts a new one.

The cost: a warm worker group holds its resources (CPUs, a GPU) between trainings, while the pool and the
rounds' generation and judging run; the driver ends it before it starts a replica or an actor pool that
would not fit beside it (`make_room`). Of step 0's trainings that run at once (jobs.initial_models), one
of the rounds' shape is the warm group's first job and the others get worker groups of their own
(`trainers_in_thread`), so that the distilled judge, the first training after step 0, starts warm too.
`cluster.warm_training: false` returns to a worker group per training.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alma.config import TrainConfig
from alma.core.errors import StageFailed
from alma.core.storage import delete_folder
from alma.jobs.training import WARM, gave_up, storage_folder, torch_trainer, watch_steps, worker_bundle

log = logging.getLogger("alma.train")

POLL_S = 0.2


def current_trainers() -> "WarmTrainers | None":
    """The warm worker groups of the block the driver is in (`warm_trainers`), None outside it."""
    return WARM.get()


@contextlib.contextmanager
def warm_trainers(storage: str | Path, enabled: bool = True) -> Iterator["WarmTrainers | None"]:
    """Within the block, jobs.training.fit trains on warm worker groups; they end with the block."""
    if not enabled:
        yield None
        return
    trainers = WarmTrainers(storage)
    token = WARM.set(trainers)
    try:
        yield trainers
    except BaseException:
        trainers.close(wait=False)  # a failed or interrupted run does not wait for its workers to wind down
        raise
    else:
        trainers.close()
    finally:
        WARM.reset(token)


@contextlib.contextmanager
def trainers_in_thread(trainers: "WarmTrainers | None") -> Iterator[None]:
    """Within the block (in this thread), trainings run on `trainers`, or with None each starts a worker
    group of its own. A thread starts with no warm group (context variables do not cross into threads):
    step 0's trainings that run at once hand the driver's group to one of them (jobs.initial_models), and
    give the others groups of their own, which one warm group would run one after another."""
    token = WARM.set(trainers)
    try:
        yield
    finally:
        WARM.reset(token)


def shape_key(train: TrainConfig) -> str:
    """What a worker group is fixed to: trainings that agree on it share one."""
    shape = {"workers": train.num_workers, "bundle": worker_bundle(train), "gpu": train.use_gpu,
             "max_failures": train.max_failures}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:10]


class _Board:
    """The job board a warm worker group reads: jobs by sequence number, and which are done. A Ray actor
    (async: workers wait on it while the driver submits)."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.results: dict[int, str | None] = {}  # seq -> None (done) or the job's error
        self.closed = False

    def submit(self, job: dict[str, Any]) -> int:
        self.jobs.append(job)
        return len(self.jobs) - 1

    def first_pending(self) -> int:
        """Where a (re)started worker group begins: the first job not done."""
        return next((seq for seq in range(len(self.jobs)) if seq not in self.results), len(self.jobs))

    async def take(self, seq: int) -> dict[str, Any] | None:
        import asyncio

        while seq >= len(self.jobs) and not self.closed:
            await asyncio.sleep(0.05)
        return None if seq >= len(self.jobs) else self.jobs[seq]

    def done(self, seq: int, error: str | None) -> None:
        self.results[seq] = error

    def result(self, seq: int) -> tuple[bool, str | None]:
        return (seq in self.results, self.results.get(seq))

    def close(self) -> None:
        self.closed = True


def _serve_jobs(config: dict[str, Any]) -> None:
    """The train function of a warm worker group, on every worker: run the board's jobs in turn."""
    import ray
    import ray.train

    board = config["board"]
    rank, world = ray.train.get_context().get_world_rank(), ray.train.get_context().get_world_size()
    seq = ray.get(board.first_pending.remote())
    while True:
        job = ray.get(board.take.remote(seq))
        if job is None:  # the driver closed the board
            return
        error = None
        try:
            job["loop"]({**job["config"], "job": job["id"]})
        except Exception as e:
            if world > 1:
                # With several workers the error may be a peer's loss seen from here (a collective's
                # connection reset when its node went away): Ray Train's to handle, as for a training on its
                # own. It restarts the group, which takes this job again from its last checkpoint, or gives
                # up after max_failures, which fails the job.
                raise
            error = f"{type(e).__name__}: {e}"  # the stage's error, not the group's: it waits for the next job
            log.exception("job %s failed", job["id"])
        if rank == 0:
            ray.get(board.done.remote(seq, error))
        seq += 1
        gc.collect()


class _Group:
    """One warm worker group: its board, and the TorchTrainer.fit that runs it in a driver thread."""

    def __init__(self, key: str, train: TrainConfig, storage: str | Path):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.key = key
        # The board lives on the driver's node: it holds the only record of which jobs are done, and a
        # worker node that is lost (the fault the group exists to survive) must not take it along.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.board = ray.remote(_Board).options(num_cpus=0, scheduling_strategy=here).remote()
        self.folder = storage_folder(storage, f"warm-{key}")
        delete_folder(self.folder)
        self.trainer = torch_trainer(_serve_jobs, {"board": self.board}, f"warm-{key}", train, storage)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._fit, name=f"alma-warm-{key}", daemon=True)
        self.thread.start()

    def _fit(self) -> None:
        try:
            self.trainer.fit()
        except BaseException as e:  # read by the job in flight (train) and by close
            self.error = e

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def close(self, wait: bool = True) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.get(self.board.close.remote(), timeout=10)
        if wait:
            self.thread.join(timeout=60)
        with contextlib.suppress(Exception):
            ray.kill(self.board)
        delete_folder(self.folder)


class WarmTrainers:
    """The driver's warm worker group, started by the first training of its shape (`shape_key`). One group
    at a time: a training of another shape ends the group there is (trainings after step 0 run one after
    another, so two idle groups would only hold resources the streams and replicas may need)."""

    def __init__(self, storage: str | Path):
        self.storage = storage
        self._current: _Group | None = None
        self._lock = threading.Lock()

    def _group(self, train: TrainConfig) -> _Group:
        key = shape_key(train)
        with self._lock:
            group = self._current
            if group is not None and group.key != key:
                group.close()
            if group is None or group.key != key or not group.alive:  # a given-up group is replaced too
                group = self._current = _Group(key, train, self.storage)
            return group

    def make_room(self, *bundles: dict[str, float]) -> bool:
        """End the warm group if actors asking for `bundles` (a Serve replica, a stream's actor pool) would
        not fit beside it on the cluster's free resources now (the driver asks before it starts them);
        True if it ended the group."""
        from alma.cluster.resources import free_per_node
        from alma.core.packing import place

        with self._lock:
            if self._current is None or place(list(bundles), free_per_node()):
                return False
        log.info("ending the warm training workers: actors needing %s do not fit beside them", list(bundles))
        self.close()
        return True

    def train(self, loop: Callable[[dict[str, Any]], None], name: str, config: dict[str, Any], output: Path,
              train: TrainConfig) -> None:
        """Run one training (what jobs.training.fit would run on a worker group of its own) as the next job
        of the warm group of its shape; returns once rank 0 has written `output`."""
        import ray

        group = self._group(train)
        job_id = f"{name}-{time.time_ns()}"
        seq = ray.get(group.board.submit.remote({"id": job_id, "loop": loop, "config": config}))
        with watch_steps(name, output):
            while True:
                done, error = ray.get(group.board.result.remote(seq))
                if done:
                    break
                if not group.alive:
                    raise gave_up(name, train, group.error or RuntimeError("the worker group ended"))
                time.sleep(POLL_S)
        if error is not None:
            raise StageFailed(f"train {name}: {error} (the workers' tracebacks are in the run's Ray logs)")

    def close(self, wait: bool = True) -> None:
        """End the warm worker group (its workers exit once the board says there are no more jobs)."""
        with self._lock:
            group, self._current = self._current, None
        if group is not None:
            group.close(wait)
