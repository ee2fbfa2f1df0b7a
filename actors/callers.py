"""Ray Data callables that stream table rows through the Serve deployments.

Each is used with `Dataset.map_batches(..., compute=ActorPoolStrategy(size=k))`: an actor holds a
deployment handle, sends its batch (grouped per checkpoint, concurrently) and returns the result rows.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from typing import Any

import numpy as np

from alma.cluster.serve_apps import GENERATOR_APP, JUDGE_APP


def _handle(app: str, deployment: str):
    from ray import serve

    return serve.get_deployment_handle(deployment, app_name=app)


def _as_prompt(mode: str, text: str) -> Any:
    return [{"role": "user", "content": text}] if mode == "chat" else text


class GenerateCaller:
    """Input rows: prompt_id, prompt, mode ('chat'|'text'), checkpoint, checkpoint_path, n, seed.
    Output rows: one per sample, with prompt_id, prompt, checkpoint, sample, response."""

    def __init__(self, sampling: dict[str, Any]):
        self._handle = _handle(GENERATOR_APP, "Generator")
        self._sampling = sampling

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i in range(len(batch["prompt_id"])):
            groups[(str(batch["checkpoint_path"][i]), str(batch["mode"][i]), int(batch["n"][i]))].append(i)
        calls = []
        for (path, mode, n), rows in groups.items():
            # One seed per call, derived from the rows it holds: reruns of the same batch agree.
            seed = zlib.crc32(",".join(sorted(str(batch["seed"][i]) for i in rows)).encode())
            prompts = [_as_prompt(mode, str(batch["prompt"][i])) for i in rows]
            ref = self._handle.options(multiplexed_model_id=path).generate.remote(
                prompts, n, {**self._sampling, "seed": seed})
            calls.append((rows, ref))
        out: dict[str, list] = defaultdict(list)
        for rows, ref in calls:
            for i, samples in zip(rows, ref.result()):
                for s, text in enumerate(samples):
                    out["prompt_id"].append(str(batch["prompt_id"][i]))
                    out["prompt"].append(str(batch["prompt"][i]))
                    out["checkpoint"].append(str(batch["checkpoint"][i]))
                    out["sample"].append(s)
                    out["response"].append(text)
        return dict(out)


class JudgeCaller:
    """Adds `score` (float; NaN when a sampled judgment parsed nothing), `distribution` (11 floats) and
    `missing` (unparseable sampled replies) to rows holding prompt and response. `mode` overrides the
    judge's configured scoring mode."""

    def __init__(self, mode: str | None = None):
        self._handle = _handle(JUDGE_APP, "Judge")
        self._mode = mode

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        pairs = [{"prompt": str(p), "response": str(r)} for p, r in zip(batch["prompt"], batch["response"])]
        results = self._handle.score.remote(pairs, self._mode).result()
        out = {k: list(v) for k, v in batch.items()}
        for key in ("score", "distribution", "missing"):
            out[key] = [r[key] for r in results]
        return out
