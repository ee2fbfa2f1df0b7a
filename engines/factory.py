"""Pick and build an engine by name, so actors never import a model library directly.

`engine: auto` picks vLLM where it is installed and runs on the engine's device, and transformers
otherwise; the choice and its reason are logged by every process that makes it (each Serve replica
decides for itself: one may sit on a GPU node, another on a CPU node). `transformers` and `vllm` are
taken as given; `vllm` fails with the reason when it cannot run.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alma.core.engine_api import Engine
from alma.core.storage import is_uri, local_stage

if TYPE_CHECKING:
    from alma.config import ModelConfig

ENGINES = ("auto", "transformers", "vllm")
DEVICES = ("auto", "cpu", "cuda")
VLLM_INSTALL = "pip install 'alma-align[vllm]' on a GPU machine, 'alma-align[cpu]' on CPU"

log = logging.getLogger("alma.engines")


class EngineUnavailable(RuntimeError):
    """The configured engine cannot run here; the message says why."""


@dataclass(frozen=True)
class EngineChoice:
    kind: str  # "transformers" or "vllm"
    device: str  # "cpu" or "cuda"
    reason: str


def choose_engine(kind: str = "auto", device: str = "auto") -> EngineChoice:
    """Which engine runs on which device, and why; `device` "auto" means a GPU when this process sees one."""
    if kind not in ENGINES:
        raise ValueError(f"unknown engine {kind!r} (available: {', '.join(ENGINES)})")
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r} (available: {', '.join(DEVICES)})")
    target = _torch_device() if device == "auto" else device
    if kind == "transformers":
        return EngineChoice("transformers", target, "configured")
    platform, problem = vllm_platform()
    if problem is None and platform != target:
        problem = f"the installed vLLM build runs on {platform}, and this engine is for {target}"
    if kind == "vllm":
        if problem is not None:
            raise EngineUnavailable(f"engine 'vllm' cannot run: {problem}")
        return EngineChoice("vllm", target, "configured")
    if problem is not None:
        return EngineChoice("transformers", target, f"vLLM not usable: {problem}")
    return EngineChoice("vllm", target, f"vLLM is installed and runs on {target}")


@functools.lru_cache(maxsize=1)
def vllm_platform() -> tuple[str | None, str | None]:
    """(device vLLM runs on, None), or (None, why vLLM cannot be used in this process)."""
    if importlib.util.find_spec("vllm") is None:
        return None, f"vllm is not installed ({VLLM_INSTALL})"
    try:
        from vllm.platforms import current_platform
    except Exception as e:  # a broken install fails in many ways; any of them means "not usable"
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return None, f"import vllm failed: {type(e).__name__}: {first[:200]}"
    platform = current_platform.device_type
    if platform not in ("cpu", "cuda"):
        return None, f"vLLM's platform here is {platform!r} (alma runs vLLM on cpu or cuda)"
    return platform, None


def _torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class EngineSettings:
    """How to build an engine for any checkpoint: the `model.*` settings that concern inference, as one plain
    object that travels to Serve replicas and Ray Data actors (where seven arguments used to)."""

    engine: str = "auto"  # "auto", "transformers" or "vllm" (model.engine)
    device: str = "auto"  # "auto", "cpu" or "cuda" (model.device)
    dtype: str = "float32"
    max_batch_size: int = 16
    threads: int | None = None  # None: every core of the node
    trust_remote_code: bool = False
    vllm: Mapping[str, Any] = field(default_factory=dict)  # VllmEngine's own settings (model.vllm)

    @classmethod
    def of(cls, model: ModelConfig) -> EngineSettings:
        """The settings a config's `model` section gives."""
        return cls(model.engine, model.device, model.dtype, model.max_batch_size, model.threads,
                   model.trust_remote_code, model.vllm.model_dump())


def load_engine(checkpoint: str | Path, settings: EngineSettings = EngineSettings()) -> Engine:
    """Build the engine `choose_engine(settings.engine, settings.device)` picks for `checkpoint` (a folder,
    or a committed stage's URI, fetched to this node: core.storage.local_stage)."""
    if is_uri(str(checkpoint)):
        checkpoint = str(local_stage(checkpoint))
    choice = choose_engine(settings.engine, settings.device)
    if settings.engine == "auto":
        log.info("engine auto -> %s on %s for %s: %s", choice.kind, choice.device, checkpoint, choice.reason)
    threads = settings.threads or os.cpu_count() or 1
    if choice.kind == "transformers":
        from alma.engines.transformers_engine import TransformersEngine

        return TransformersEngine(checkpoint, dtype=settings.dtype, max_batch_size=settings.max_batch_size,
                                  threads=threads, trust_remote_code=settings.trust_remote_code, device=choice.device)
    from alma.engines.vllm_engine import VllmEngine

    return VllmEngine(checkpoint, dtype=settings.dtype, device=choice.device, threads=threads,
                      max_batch_size=settings.max_batch_size, trust_remote_code=settings.trust_remote_code,
                      **dict(settings.vllm))
