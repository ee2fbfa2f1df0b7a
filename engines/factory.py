"""Pick and build an engine by name, so actors never import a model library directly."""

from __future__ import annotations

import os
from pathlib import Path

from alma.engines.base import Engine


def load_engine(kind: str, checkpoint: str | Path, dtype: str = "float32", max_batch_size: int = 16,
                threads: int | None = None) -> Engine:
    threads = threads or os.cpu_count() or 1
    if kind == "transformers":
        from alma.engines.transformers_engine import TransformersEngine

        return TransformersEngine(checkpoint, dtype=dtype, max_batch_size=max_batch_size, threads=threads)
    raise ValueError(f"unknown engine '{kind}' (available: transformers)")
