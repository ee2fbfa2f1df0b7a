"""Ray Data callables that stream table rows through the Serve deployments.

Each is used with `Dataset.map_batches(..., compute=ActorPoolStrategy(size=k))`: an actor holds a
deployment handle, sends its batch (grouped per checkpoint, concurrently) and returns the result rows.

A call that fails (its replica died, say) is retried with backoff, then its rows one by one
(core.retries). Every input row comes back: as its result rows, or as one row whose `error` column says
why it failed permanently, with `attempts` and `rows_lost` (the result rows it stands for). Those three
columns are split off into the stage's errors table by jobs.streaming.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow as pa

from alma.actors.apps import GENERATOR_APP, JUDGE_APP
from alma.actors.nodes import CALLER_NODE, REPLICA_NODE, current_node
from alma.core.retries import Outcome, RetryPolicy, settle

ERROR, ATTEMPTS, ROWS_LOST = "error", "attempts", "rows_lost"
ERROR_COLUMNS = {ERROR: pa.string(), ATTEMPTS: pa.int32(), ROWS_LOST: pa.int64()}


def _handle(app: str, deployment: str):
    from ray import serve

    return serve.get_deployment_handle(deployment, app_name=app)


def _as_prompt(mode: str, text: str) -> Any:
    return [{"role": "user", "content": text}] if mode == "chat" else text


def _table(columns: dict[str, list]) -> pa.Table:
    """The result batch, with the error and node columns typed even when every value is null."""
    types = {**ERROR_COLUMNS, CALLER_NODE: pa.string(), REPLICA_NODE: pa.string()}
    return pa.table({name: pa.array(values, types.get(name)) for name, values in columns.items()})


class _Caller:
    """Retry policy and per-call timeout shared by the callers (ServeConfig fields)."""

    fan_out: str | None = None  # the input column saying how many result rows an input row gives (None: 1)
    # Calls are sized and ordered per core.batching when set: rows grouped by `batch_group`, and a call
    # carries serve.request_batch distinct `batch_unit`s' worth of rows (None: request_batch rows a call).
    batch_group: str | None = None
    batch_unit: str | None = None
    results: tuple[str, ...] = ()  # the columns a failed row has no value for (left out of the errors table)

    def __init__(self, retry: dict[str, Any]):
        self._policy = RetryPolicy(retry["retries"], retry["backoff_s"], retry["max_backoff_s"])
        self._timeout = retry.get("timeout_s")
        self._node = current_node()

    def _settle(self, rows: list[int], send, first=None) -> list[Outcome]:
        """Outcomes of `send(rows)` (a deployment response), retried per the policy."""
        return settle(rows, lambda keys: self._wait(send(keys)), self._policy,
                      first=None if first is None else (lambda: self._wait(first)))

    def _wait(self, response) -> Any:
        try:
            return response.result(timeout_s=self._timeout)
        except TimeoutError:
            response.cancel()  # the retry replaces it; don't leave it running on the replica
            raise


class GenerateCaller(_Caller):
    """Input rows: prompt_id, prompt, mode ('chat'|'text'), checkpoint, checkpoint_path, n, seed.
    Output rows: one per sample, with prompt_id, prompt, checkpoint, sample, response (+ the error
    columns). A failed request is one row with no sample or response that stands for its n samples."""

    fan_out = "n"
    results = ("sample", "response")
    batch_group, batch_unit = "checkpoint_path", "prompt_id"

    def __init__(self, sampling: dict[str, Any], retry: dict[str, Any]):
        super().__init__(retry)
        self._handle = _handle(GENERATOR_APP, "Generator")
        self._sampling = sampling

    def _wait(self, response) -> list[tuple[list[str], str]]:
        """(completions, replica node) per prompt of the call."""
        result = super()._wait(response)
        return [(completions, result["node"]) for completions in result["completions"]]

    def _send(self, batch: dict[str, np.ndarray], rows: list[int], path: str, mode: str, n: int):
        # One seed per call, derived from the rows it holds: a retried call samples the same.
        seed = zlib.crc32(",".join(sorted(str(batch["seed"][i]) for i in rows)).encode())
        prompts = [_as_prompt(mode, str(batch["prompt"][i])) for i in rows]
        return self._handle.options(multiplexed_model_id=path).generate.remote(
            prompts, n, {**self._sampling, "seed": seed})

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i in range(len(batch["prompt_id"])):
            groups[(str(batch["checkpoint_path"][i]), str(batch["mode"][i]), int(batch["n"][i]))].append(i)
        sent = [(key, rows, self._send(batch, rows, *key)) for key, rows in groups.items()]
        out: dict[str, list] = defaultdict(list)

        def add(i: int, sample: int | None, response: str | None, outcome: Outcome, lost: int,
                node: str | None = None) -> None:
            out["prompt_id"].append(str(batch["prompt_id"][i]))
            out["prompt"].append(str(batch["prompt"][i]))
            out["checkpoint"].append(str(batch["checkpoint"][i]))
            out["sample"].append(sample)
            out["response"].append(response)
            out[ERROR].append(outcome.error)
            out[ATTEMPTS].append(outcome.attempts)
            out[ROWS_LOST].append(lost)
            out[CALLER_NODE].append(self._node)
            out[REPLICA_NODE].append(node)

        for key, rows, first in sent:
            outcomes = self._settle(rows, lambda keys, key=key: self._send(batch, list(keys), *key), first)
            for i, outcome in zip(rows, outcomes):
                if outcome.ok:
                    completions, node = outcome.value
                    for s, text in enumerate(completions):
                        add(i, s, text, outcome, 0, node)
                else:
                    add(i, None, None, outcome, key[2])
        return _table(out)


class JudgeCaller(_Caller):
    """Adds `score` (float; NaN when a sampled judgment parsed nothing), `distribution` (11 floats) and
    `missing` (unparseable sampled replies) to rows holding prompt and response (+ the error columns; a
    failed judgment has no score). `mode` overrides the judge's configured scoring mode."""

    results = ("score", "distribution", "missing")

    def __init__(self, retry: dict[str, Any], mode: str | None = None):
        super().__init__(retry)
        self._handle = _handle(JUDGE_APP, "Judge")
        self._mode = mode

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        pairs = [{"prompt": str(p), "response": str(r)} for p, r in zip(batch["prompt"], batch["response"])]

        def send(keys):
            return self._handle.score.remote([pairs[i] for i in keys], self._mode)

        rows = list(range(len(pairs)))
        outcomes = self._settle(rows, send, send(rows))
        out = {k: list(v) for k, v in batch.items()}
        for key in ("score", "distribution", "missing"):
            out[key] = [o.value[key] if o.ok else None for o in outcomes]
        out[ERROR] = [o.error for o in outcomes]
        out[ATTEMPTS] = [o.attempts for o in outcomes]
        out[ROWS_LOST] = [0 if o.ok else 1 for o in outcomes]
        out[CALLER_NODE] = [self._node] * len(outcomes)
        out[REPLICA_NODE] = [o.value.get("node") if o.ok else None for o in outcomes]
        return _table(out)
