"""The engine contract (core/engine_api.py) on plain transformers: CPU or one CUDA GPU, no extra runtime.

Batched `generate` for sampling, one forward pass (per `max_batch_size` rows) for the judge's score
distribution, and one for pooled hidden-state embeddings. The label arithmetic lives in core.scoring and
the token rules in engines.encoding; this module only pads and reads log-probs and hidden states.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from alma.core.engine_api import Message, Prompt, Sampling
from alma.core.scoring import TokenIds, context_sequences, label_distribution, queries
from alma.engines.encoding import PromptEncoder, cut_at_stop

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
POOLINGS = ("mean", "last")


class TransformersEngine:
    """One checkpoint, loaded once; generation and scoring run in inference mode, in batches.

    `threads` sets torch's intra-op threads for the whole process (torch has no per-model setting), so
    one engine per process is the intended use, as in a Ray actor. Calls are not thread-safe: a seeded
    call reseeds torch's (process-global) RNG for its duration, so serve one call at a time.
    `device` is "cpu", "cuda" (the current GPU) or "cuda:N"; results come back on the CPU either way.
    """

    def __init__(
        self,
        checkpoint: str | Path,
        dtype: str = "float32",
        threads: int | None = None,
        max_batch_size: int = 16,
        trust_remote_code: bool = False,
        device: str = "cpu",
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}")
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if threads is not None:
            torch.set_num_threads(threads)
        self.checkpoint = str(checkpoint)
        self.max_batch_size = max_batch_size
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.checkpoint, trust_remote_code=trust_remote_code)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.checkpoint, dtype=DTYPES[dtype], use_safetensors=True, trust_remote_code=trust_remote_code
        ).to(self.device).eval()
        self.encoder = PromptEncoder(self.tokenizer, self.model.generation_config.eos_token_id, self.checkpoint)
        self._stop_token_ids = self.encoder.end_token_ids
        # Some tokenizers (SmolLM2's GGUF one included) have no pad token; any id works for padding,
        # since the attention mask hides it and decoding skips it.
        pad = self.tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else self._stop_token_ids[0]

    # ---- generation ------------------------------------------------------------------------------

    def render_chat(self, conversation: list[Message]) -> str:
        return self.encoder.render_chat(conversation)

    def generate(self, prompts: Sequence[Prompt], n: int, sampling: Sampling) -> list[list[str]]:
        if n < 1:
            raise ValueError("n must be at least 1")
        greedy = sampling.temperature == 0
        # Greedy decoding gives one answer whatever n is: decode it once and copy it.
        per_prompt = 1 if greedy else n
        config = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=not greedy,
            num_return_sequences=per_prompt,
            eos_token_id=self._stop_token_ids,
            pad_token_id=self._pad_id,
            stop_strings=list(sampling.stop) or None,
            **({} if greedy else {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}),
        )
        encoded = [self.encoder.prompt_ids(prompt) for prompt in prompts]
        # Batches are bounded in rows (prompts x samples), which is what memory scales with.
        prompts_per_batch = max(1, self.max_batch_size // per_prompt)
        completions: list[list[str]] = []
        with torch.inference_mode(), _seeded(sampling.seed, self.device):
            for start in range(0, len(encoded), prompts_per_batch):
                batch = encoded[start : start + prompts_per_batch]
                input_ids, attention_mask = _left_pad(batch, self._pad_id, self.device)
                output = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    generation_config=config,
                    tokenizer=self.tokenizer,
                )
                texts = self.tokenizer.batch_decode(output[:, input_ids.shape[1] :], skip_special_tokens=True)
                for index in range(len(batch)):
                    answers = [
                        cut_at_stop(text, sampling.stop)
                        for text in texts[index * per_prompt : (index + 1) * per_prompt]
                    ]
                    completions.append(answers * n if greedy else answers)
        return completions

    # ---- judging ---------------------------------------------------------------------------------

    def score_distribution(
        self, conversations: Sequence[list[Message]], answer_prefix: str, labels: Sequence[str]
    ) -> list[list[float]]:
        trie = self.encoder.label_trie(answer_prefix, labels)
        wanted = queries(trie)
        suffixes = context_sequences(trie)
        prefixes = [self.encoder.judge_ids(conversation, answer_prefix) for conversation in conversations]
        # One row per (conversation, suffix); rows are independent, so any batching gives the same numbers.
        rows = [(index, suffix) for index in range(len(prefixes)) for suffix in suffixes]
        logprobs: list[dict[TokenIds, dict[int, float]]] = [{} for _ in prefixes]
        for start in range(0, len(rows), self.max_batch_size):
            batch = rows[start : start + self.max_batch_size]
            windows = self._tail_logprobs(
                [prefixes[index] + list(suffix) for index, suffix in batch],
                keep=1 + max(len(suffix) for _, suffix in batch),
            )
            for (index, suffix), window in zip(batch, windows):
                # The window's last len(suffix)+1 positions predict what follows prompt + suffix[:depth].
                first = window.shape[0] - 1 - len(suffix)
                for depth in range(len(suffix) + 1):
                    context = suffix[:depth]
                    tokens = wanted.get(context)
                    if tokens and context not in logprobs[index]:
                        values = window[first + depth, list(tokens)].tolist()
                        logprobs[index][context] = dict(zip(tokens, values))
        return [label_distribution(trie, row) for row in logprobs]

    def _tail_logprobs(self, sequences: list[list[int]], keep: int) -> torch.Tensor:
        """Next-token log-probs at each sequence's last `keep` positions, in one forward pass.

        Left padding lines every sequence's end up at the same column, so `logits_to_keep` can keep
        just that tail instead of a (batch, length, vocab) tensor, which for a 49k vocabulary and long
        judge prompts would run into gigabytes. Position ids then have to skip the padding.
        """
        input_ids, attention_mask = _left_pad(sequences, self._pad_id, self.device)
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                logits_to_keep=keep,
                use_cache=False,
            ).logits
        return logits.float().log_softmax(dim=-1).cpu()

    def close(self) -> None:
        """Drop the model; on a GPU, hand its memory back to the device."""
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # ---- embedding -------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], layer: int = -1, pooling: str = "mean",
              max_tokens: int = 128) -> np.ndarray:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")
        states = self.model.config.num_hidden_layers + 1
        if not -states <= layer < states:
            raise ValueError(f"layer {layer} is outside the model's {states} hidden states")
        encoded = [self.encoder.prompt_ids(text)[:max_tokens] for text in texts]
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        # Similar lengths share a batch, so little compute goes to padding.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.max_batch_size):
                rows = order[start : start + self.max_batch_size]
                input_ids, attention_mask = _right_pad([encoded[i] for i in rows], self._pad_id, self.device)
                hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                                    use_cache=False, logits_to_keep=1).hidden_states[layer].float()
                if pooling == "mean":
                    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
                else:
                    pooled = hidden[torch.arange(len(rows)), attention_mask.sum(dim=1) - 1]
                out[rows] = pooled.cpu().numpy()
        return out


def _right_pad(sequences: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right padding: every sequence starts at position 0, so positions need no correction."""
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
    return input_ids.to(device), attention_mask.to(device)


def _left_pad(sequences: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left padding: every sequence ends in the last column, where generation continues it."""
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, width - len(sequence) :] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, width - len(sequence) :] = 1
    return input_ids.to(device), attention_mask.to(device)


@contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's RNG for one call without disturbing the process's own streams afterwards.

    On a GPU the sampling draws from that GPU's generator, which is forked (and seeded) too.
    """
    if seed is None:
        yield
        return
    gpus = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(seed)
        yield
