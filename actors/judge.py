"""The judge deployment: scores (prompt, response) pairs in the run's scoring mode (core.judge_modes).

`expected` (the default, the paper's "score aggregation") is one forward pass per judgment: the
probability-weighted mean of the labels 0..10 read after "Rating: [["; `argmax` reads the same pass;
`sampled` writes k judgments. The distribution is returned too, so callers can audit it or aggregate
differently.
"""

from __future__ import annotations

import asyncio
from contextlib import nullcontext
from typing import Any

from ray import serve

from alma.actors.loopback import keep_replica_grpc_on_loopback
from alma.actors.nodes import current_node
from alma.actors.metrics import RequestMetrics
from alma.actors.scorer import PairScorer, Scoring
from alma.engines.factory import EngineSettings


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=8)
class Judge:
    def __init__(self, checkpoint: str, rubric: str, answer_prefix: str, scoring: Scoring,
                 settings: EngineSettings):
        keep_replica_grpc_on_loopback()
        self.checkpoint = checkpoint
        self._scorer = PairScorer(checkpoint, rubric, answer_prefix, scoring, settings)
        # vLLM batches concurrent calls itself; a transformers engine serves one call at a time.
        self._lock = nullcontext() if self._scorer.concurrent else asyncio.Lock()
        self._metrics = RequestMetrics("judge", ("judgments",))
        self._node = current_node()

    async def score(self, pairs: list[dict[str, str]], mode: str | None = None) -> list[dict[str, Any]]:
        """One {score, distribution, mode, missing, node} per {prompt, response}, in order (`node`: the Ray
        node id of this replica, for the stage's record of which node ran what).

        `mode` overrides the configured scoring mode for this call: self-distillation labels with the
        expected score whatever mode the rounds are judged in.
        """
        with self._metrics.request(self.checkpoint) as count:
            async with self._lock:
                judgments = await asyncio.to_thread(self._scorer.score, pairs, mode)
            count(judgments=len(judgments))
            return [{**j, "node": self._node} for j in judgments]

    def check_health(self) -> None:
        """Serve calls this periodically; a replica that raises here is replaced."""
