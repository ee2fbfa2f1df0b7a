"""The generator deployment: one Serve deployment that serves every checkpoint of a run.

Checkpoints are addressed with Serve model multiplexing (the model id is the checkpoint folder), so the
base model, both SFT models and each round's new model share one autoscaling pool of replicas, a new
round's checkpoint is served by simply addressing it (no redeploy, no cluster restart), and requests are
routed to replicas that already hold the checkpoint. Each replica keeps at most MAX_CHECKPOINTS loaded
(least recently used evicted): base + two SFT seeds + latest.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from alma.cluster.loopback import keep_replica_grpc_on_loopback
from alma.engines.base import Engine, Sampling
from alma.engines.factory import load_engine

MAX_CHECKPOINTS = 4


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=8)
class Generator:
    def __init__(self, engine: str = "transformers", dtype: str = "float32", max_batch_size: int = 16,
                 threads: int | None = None):
        keep_replica_grpc_on_loopback()
        self._kind, self._dtype, self._max_batch, self._threads = engine, dtype, max_batch_size, threads
        # One engine call at a time per replica: CPU inference does not gain from interleaving threads.
        self._lock = asyncio.Lock()

    @serve.multiplexed(max_num_models_per_replica=MAX_CHECKPOINTS)
    async def _engine(self, checkpoint: str) -> Engine:
        return await asyncio.to_thread(load_engine, self._kind, checkpoint, self._dtype, self._max_batch,
                                       self._threads)

    async def generate(self, prompts: list[Any], n: int, sampling: dict[str, Any]) -> list[list[str]]:
        """N completions per prompt from the checkpoint named by the request's multiplexed model id."""
        engine = await self._engine(serve.get_multiplexed_model_id())
        params = Sampling(**{**sampling, "stop": tuple(sampling.get("stop", ()))})
        async with self._lock:
            return await asyncio.to_thread(engine.generate, prompts, n, params)

    def check_health(self) -> None:
        """Serve calls this periodically; a replica that raises here is replaced."""
