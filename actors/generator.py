"""The generator deployment: one Serve deployment that serves every checkpoint of a run.

Checkpoints are addressed with Serve model multiplexing (the model id is the checkpoint folder), so the
base model, both SFT models and each round's new model share one autoscaling pool of replicas, a new
round's checkpoint is served by simply addressing it (no redeploy, no cluster restart), and requests are
routed to replicas that already hold the checkpoint. Each replica keeps at most MAX_CHECKPOINTS loaded
(least recently used evicted, its engine closed): base + two SFT seeds + latest. With vLLM each of those
is its own engine (docs/engines.md: why not LoRA or weight reloading), and concurrent requests for one
checkpoint join its running batch instead of taking turns.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from alma.actors.loopback import keep_replica_grpc_on_loopback
from alma.actors.nodes import current_node
from alma.actors.metrics import RequestMetrics
from alma.core.engine_api import ConcurrentEngine, Engine, Sampling
from alma.engines.factory import EngineSettings, load_engine

MAX_CHECKPOINTS = 4


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=8)
class Generator:
    def __init__(self, settings: EngineSettings = EngineSettings(engine="transformers")):
        keep_replica_grpc_on_loopback()
        self._settings = settings
        # One transformers call at a time per replica: CPU inference does not gain from interleaving threads.
        self._lock = asyncio.Lock()
        self._metrics = RequestMetrics("generator", ("prompts", "completions"))
        self._node = current_node()

    @serve.multiplexed(max_num_models_per_replica=MAX_CHECKPOINTS)
    async def _engine(self, checkpoint: str) -> Engine:
        return await asyncio.to_thread(load_engine, checkpoint, self._settings)

    async def generate(self, prompts: list[Any], n: int, sampling: dict[str, Any]) -> dict[str, Any]:
        """{completions: N completions per prompt, node: the Ray node id of this replica} from the
        checkpoint named by the request's multiplexed model id; the node goes into the stage's record of
        which node ran what."""
        checkpoint = serve.get_multiplexed_model_id()
        with self._metrics.request(checkpoint) as count:
            engine = await self._engine(checkpoint)
            params = Sampling(**{**sampling, "stop": tuple(sampling.get("stop", ()))})
            if isinstance(engine, ConcurrentEngine):
                completions = await engine.agenerate(prompts, n, params)
            else:
                async with self._lock:
                    completions = await asyncio.to_thread(engine.generate, prompts, n, params)
            count(prompts=len(prompts), completions=sum(len(c) for c in completions))
            return {"completions": completions, "node": self._node}

    def check_health(self) -> None:
        """Serve calls this periodically; a replica that raises here is replaced."""
