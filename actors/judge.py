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
from alma.actors.metrics import RequestMetrics
from alma.core.engine_api import ConcurrentEngine
from alma.core.judge_modes import batch_seed, check_mode, judge
from alma.core.judge_prompt import judge_messages
from alma.engines.factory import load_engine


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=8)
class Judge:
    def __init__(self, checkpoint: str, rubric: str, answer_prefix: str, scoring: str = "expected",
                 samples: int = 5, sample_temperature: float = 1.0, engine: str = "transformers",
                 dtype: str = "float32", max_batch_size: int = 16, threads: int | None = None,
                 trust_remote_code: bool = False, device: str = "auto", vllm: dict[str, Any] | None = None):
        keep_replica_grpc_on_loopback()
        self.checkpoint = checkpoint
        self._rubric, self._prefix = rubric, answer_prefix
        self._mode, self._samples, self._temperature = check_mode(scoring), samples, sample_temperature
        self._engine = load_engine(engine, checkpoint, dtype, max_batch_size, threads, trust_remote_code,
                                   device=device, vllm=vllm)
        # vLLM batches concurrent calls itself; a transformers engine serves one call at a time.
        self._lock = nullcontext() if isinstance(self._engine, ConcurrentEngine) else asyncio.Lock()
        self._metrics = RequestMetrics("judge", ("judgments",))

    def _score(self, pairs: list[dict[str, str]], mode: str) -> list[dict[str, Any]]:
        conversations = [judge_messages(p["prompt"], p["response"], self._rubric) for p in pairs]
        # Seeded by the pairs themselves, so that rescoring a batch (a retried stage) samples the same.
        seed = batch_seed(text for p in pairs for text in (p["prompt"], p["response"]))
        judgments = judge(self._engine, conversations, self._prefix, mode, self._samples, self._temperature, seed)
        return [j.as_dict() for j in judgments]

    async def score(self, pairs: list[dict[str, str]], mode: str | None = None) -> list[dict[str, Any]]:
        """One {score, distribution, mode, missing} per {prompt, response}, in order.

        `mode` overrides the configured scoring mode for this call: self-distillation labels with the
        expected score whatever mode the rounds are judged in.
        """
        mode = check_mode(mode) if mode is not None else self._mode
        with self._metrics.request(self.checkpoint) as count:
            async with self._lock:
                judgments = await asyncio.to_thread(self._score, pairs, mode)
            count(judgments=len(judgments))
            return judgments

    def check_health(self) -> None:
        """Serve calls this periodically; a replica that raises here is replaced."""
