"""The judge deployment: scores (prompt, response) pairs with one forward pass each.

The score is the probability-weighted mean of the labels 0..10, read from the judge's renormalised
next-token distribution after "Rating: [[" (the paper's "score aggregation"); the distribution itself is
returned too, so callers can audit it or aggregate differently.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from alma.cluster.loopback import keep_replica_grpc_on_loopback
from alma.core.judge_prompt import LABELS, judge_messages
from alma.core.scoring import expected_score
from alma.engines.factory import load_engine


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=8)
class Judge:
    def __init__(self, checkpoint: str, rubric: str, answer_prefix: str, engine: str = "transformers",
                 dtype: str = "float32", max_batch_size: int = 16, threads: int | None = None):
        keep_replica_grpc_on_loopback()
        self.checkpoint = checkpoint
        self._rubric, self._prefix = rubric, answer_prefix
        self._engine = load_engine(engine, checkpoint, dtype, max_batch_size, threads)
        self._lock = asyncio.Lock()

    def _score(self, pairs: list[dict[str, str]]) -> list[dict[str, Any]]:
        conversations = [judge_messages(p["prompt"], p["response"], self._rubric) for p in pairs]
        dists = self._engine.score_distribution(conversations, self._prefix, LABELS)
        return [{"score": expected_score(d), "distribution": list(d)} for d in dists]

    async def score(self, pairs: list[dict[str, str]]) -> list[dict[str, Any]]:
        """One {score, distribution} per {prompt, response}, in order."""
        async with self._lock:
            return await asyncio.to_thread(self._score, pairs)

    def check_health(self) -> None:
        """Serve calls this periodically; a replica that raises here is replaced."""
