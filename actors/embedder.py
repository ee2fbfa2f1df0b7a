"""Ray Data callable that embeds pool prompts with the base model (engine layer, no Serve deployment).

Used with `Dataset.map_batches(Embedder, batch_format="pyarrow", compute=ActorPoolStrategy(size=k))`:
each actor loads the base checkpoint once, and turns batches of (prompt_id, prompt) into
(prompt_id, embedding) with the embedding a fixed_size_list<float32> column. Embedding is a one-off bulk
pass over the whole pool, so it runs in Data actors that hold the model themselves rather than through
the generator deployment, and they go away when the pass ends.
"""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa

from alma.core.embeddings import EMBEDDING, to_arrow
from alma.engines.factory import EngineSettings, load_engine


class Embedder:
    def __init__(self, checkpoint: str, settings: EngineSettings, layer: int, pooling: str, max_tokens: int):
        # Always transformers: vLLM returns no intermediate hidden states (VllmEngine.embed would load a
        # transformers copy anyway), so starting a vLLM engine here would only cost time and memory.
        self._engine = load_engine(checkpoint, replace(settings, engine="transformers"))
        self._layer, self._pooling, self._max_tokens = layer, pooling, max_tokens

    def __call__(self, batch: pa.Table) -> pa.Table:
        vectors = self._engine.embed(batch["prompt"].to_pylist(), self._layer, self._pooling, self._max_tokens)
        return pa.table({"prompt_id": batch["prompt_id"], EMBEDDING: to_arrow(vectors)})
