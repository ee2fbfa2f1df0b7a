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
        self._serve_started = False
        self._generator = False
        self._judge: str | None = None  # the checkpoint location the judge app serves

    def _serve(self) -> None:
        """Serve itself, started with the first app (a run that deploys none never starts it)."""
        from alma.cluster.serve_apps import start_serve

        if not self._serve_started:
            start_serve()
            self._serve_started = True

    def _make_room(self, count: int = 1) -> None:
        from alma.cluster.serve_apps import replica_bundle
        from alma.jobs.warm_training import current_trainers

        warm = current_trainers()
        if warm is not None:
            warm.make_room(*[replica_bundle(self.cfg)] * count)

    def generator(self) -> None:
        """The multiplexed generator app (every checkpoint a round samples from)."""
        from alma.cluster.serve_apps import deploy_generator

        with self._lock:
            if not self._generator:
                self._serve()
                self._make_room()
                deploy_generator(self.cfg)
                self._generator = True

    def judge(self, location: str) -> None:
        """The judge app serving the checkpoint at `location` (redeployed in place when it changes)."""
        from alma.cluster.serve_apps import deploy_judge
        from alma.core.judge_prompt import load_rubric

        with self._lock:
            if self._judge != location:
                self._serve()
                self._make_room()
                if self.rubric is None:
                    self.rubric = load_rubric(self.cfg.judge.rubric)
                deploy_judge(self.cfg, location, self.rubric)
                self._judge = location

    def embedders(self) -> None:
        """Room for the pool's embedding actors (a replica's bundle each), which Ray Data starts itself."""
        self._make_room(self.cfg.pool.embed_actors)
