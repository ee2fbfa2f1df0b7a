"""Request metrics of the Serve deployments, exported with Ray's metrics (Prometheus format, on each node's
metrics port; Ray Serve adds its own per-deployment request counts and latencies beside them).

Per deployment (`generator`, `judge`, `judge_http`) and checkpoint (the folder's name: sft-1, round-2,
judge-distilled): `alma_<deployment>_requests` (calls), `alma_<deployment>_errors` (calls that raised),
`alma_<deployment>_latency_s` (seconds per call, a histogram), and a counter per unit of work a call
carries (`alma_generator_prompts`, `alma_generator_completions`, `alma_judge_judgments`). Ray exports them
with its `ray_` prefix, and Prometheus names counters with `_total`: `ray_alma_generator_requests_total`,
`ray_alma_generator_latency_s_bucket`, ...
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import PurePath
from typing import Callable, Iterator

# Seconds: a tiny model's batch on a GPU takes milliseconds, a 135M model's batch of 64 on a CPU minutes.
LATENCY_BOUNDARIES_S = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
TAG_KEYS = ("checkpoint",)


def checkpoint_tag(checkpoint: str) -> str:
    """A checkpoint's folder name: few distinct values, so the metrics stay cheap (no full paths)."""
    return PurePath(checkpoint.rstrip("/")).name or checkpoint


class RequestMetrics:
    def __init__(self, deployment: str, units: tuple[str, ...]):
        from ray.util.metrics import Counter, Histogram

        name = f"alma_{deployment}"
        self._requests = Counter(f"{name}_requests", description=f"Calls of the {deployment} deployment.",
                                 tag_keys=TAG_KEYS)
        self._errors = Counter(f"{name}_errors", description=f"Calls of the {deployment} deployment that raised.",
                               tag_keys=TAG_KEYS)
        self._latency = Histogram(f"{name}_latency_s", description=f"Seconds per {deployment} call.",
                                  boundaries=LATENCY_BOUNDARIES_S, tag_keys=TAG_KEYS)
        self._units = {unit: Counter(f"{name}_{unit}", description=f"{unit.capitalize()} the {deployment} "
                                     "deployment served.", tag_keys=TAG_KEYS) for unit in units}

    @contextmanager
    def request(self, checkpoint: str) -> Iterator[Callable[..., None]]:
        """Time one call; the block calls the yielded function with its units' counts (prompts=8, ...)."""
        tags = {"checkpoint": checkpoint_tag(checkpoint)}
        started = time.perf_counter()

        def count(**units: int) -> None:
            for unit, value in units.items():
                if value > 0:  # Ray's counters take positive increments only
                    self._units[unit].inc(value, tags=tags)

        try:
            yield count
        except BaseException:
            self._errors.inc(1, tags=tags)
            raise
        finally:
            self._requests.inc(1, tags=tags)
            self._latency.observe(time.perf_counter() - started, tags=tags)
