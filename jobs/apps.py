"""The Serve apps a run's stages stream through, deployed when a stage first needs one.

A resumed run skips its committed stages. Deploying the generator and the judge up front would start
their engines for stages that do nothing (a judge model loaded onto a GPU takes minutes on a large model;
8 s for the tiny one on 2 cores), and could end the warm worker group to make room for replicas no stage
uses. So a stage's build, which runs only when the stage is not committed, asks for the app it streams
through: the first ask deploys it, later asks for the same app (or the same judge checkpoint) return at
once. Before a deployment the warm worker group of the asking thread is ended if the replica would not
fit beside it (jobs.warm_training.WarmTrainers.make_room); work started beside step 0 runs on its own
thread, with no warm group, because room for it was planned (jobs.beside).
"""

from __future__ import annotations

import threading

from alma.config import AlmaConfig


class Apps:
    """One run's deployments: which are up, and how to bring up the one a stage needs."""

    def __init__(self, cfg: AlmaConfig, rubric: str | None = None):
        self.cfg = cfg
        self.rubric = rubric  # the judge's scale text; None: read from judge.rubric when the judge is deployed
        self._lock = threading.Lock()
        self._generator = False
        self._judge: str | None = None  # the checkpoint location the judge app serves

    def _serve(self) -> None:
        """Serve itself, started with the first app (a run that deploys none never starts it)."""
        from alma.cluster.serve_apps import start_serve

        if not self._generator and self._judge is None:
            start_serve()

    def _make_room(self, replicas: int, callers: bool = True) -> None:
        """End the asking thread's warm group if `replicas` replica bundles, and a stream's caller actors, would
        not fit beside it. The callers are asked for on every stream, not only with a deployment: the warm
        group may have been restarted beside the replicas since (a training between two streams)."""
        from alma.cluster.serve_apps import replica_bundle
        from alma.jobs.streaming import CALLER_CPUS
        from alma.jobs.warm_training import current_trainers

        warm = current_trainers()
        if warm is not None:
            bundles = [replica_bundle(self.cfg)] * replicas
            if callers:
                bundles += [{"CPU": CALLER_CPUS}] * self.cfg.serve.data_concurrency
            warm.make_room(*bundles)

    def generator(self) -> None:
        """The multiplexed generator app (every checkpoint a round samples from), and room to stream to it."""
        from alma.cluster.serve_apps import deploy_generator

        with self._lock:
            self._make_room(0 if self._generator else 1)
            if not self._generator:
                self._serve()
                deploy_generator(self.cfg)
                self._generator = True

    def judge(self, location: str) -> None:
        """The judge app serving the checkpoint at `location` (redeployed in place when it changes: Serve starts
        the new replica before it stops the old one), and room to stream to it."""
        from alma.cluster.serve_apps import deploy_judge
        from alma.core.judge_prompt import load_rubric

        with self._lock:
            self._make_room(0 if self._judge == location else 1)
            if self._judge != location:
                self._serve()
                if self.rubric is None:
                    self.rubric = load_rubric(self.cfg.judge.rubric)
                deploy_judge(self.cfg, location, self.rubric)
                self._judge = location

    def embedders(self) -> None:
        """Room for the pool's embedding actors (a replica's bundle each), which Ray Data starts itself."""
        self._make_room(self.cfg.pool.embed_actors, callers=False)
