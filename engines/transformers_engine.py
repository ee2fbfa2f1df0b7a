"""The engine contract (engines/base.py) on plain transformers: CPU-friendly, no extra runtime.

Batched `generate` for sampling, one forward pass (per `max_batch_size` rows) for the judge's score
distribution, and one for pooled hidden-state embeddings. The label arithmetic lives in core.scoring;
this module only tokenises, pads and reads log-probs and hidden states.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from alma.core.scoring import LabelTrie, TokenIds, context_sequences, label_distribution, queries
from alma.engines.base import Message, Prompt, Sampling

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
POOLINGS = ("mean", "last")


class TransformersEngine:
    """One checkpoint, loaded once; generation and scoring run in inference mode, in batches.

    `threads` sets torch's intra-op threads for the whole process (torch has no per-model setting), so
    one engine per process is the intended use, as in a Ray actor. Calls are not thread-safe: a seeded
    call reseeds torch's (process-global) RNG for its duration, so serve one call at a time.
    """

    def __init__(
        self,
        checkpoint: str | Path,
        dtype: str = "float32",
        threads: int | None = None,
        max_batch_size: int = 16,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}")
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if threads is not None:
            torch.set_num_threads(threads)
        self.checkpoint = str(checkpoint)
        self.max_batch_size = max_batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.checkpoint, dtype=DTYPES[dtype], use_safetensors=True, trust_remote_code=False
        ).eval()
        self._stop_token_ids = self._end_token_ids()
        # Some tokenizers (SmolLM2's GGUF one included) have no pad token; any id works for padding,
        # since the attention mask hides it and decoding skips it.
        pad = self.tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else self._stop_token_ids[0]
        self._label_tries: dict[tuple[str, tuple[str, ...]], LabelTrie] = {}

    def _end_token_ids(self) -> list[int]:
        """Every id that ends an answer: the tokenizer's eos, the model's, and ChatML's <|im_end|>."""
        ids: list[int] = []
        model_eos = self.model.generation_config.eos_token_id
        candidates = [self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>")]
        candidates += model_eos if isinstance(model_eos, list) else [model_eos]
        for token in candidates:
            if token is not None and token != self.tokenizer.unk_token_id and token not in ids:
                ids.append(token)
        if not ids:
            raise ValueError(f"{self.checkpoint}: the tokenizer and model define no end-of-text token")
        return ids

    # ---- generation ------------------------------------------------------------------------------

    def _prompt_ids(self, prompt: Prompt) -> list[int]:
        """Raw text is encoded as is (plus BOS where the tokenizer adds one); chats go through the template.

        The rendered template already holds its special tokens, so it is encoded without adding any.
        """
        if isinstance(prompt, str):
            # A rendered chat (see render_chat) already starts with its BOS, where the template has one.
            bos = self.tokenizer.bos_token
            ids = self.tokenizer(prompt, add_special_tokens=not (bos and prompt.startswith(bos)))["input_ids"]
        else:
            ids = self.tokenizer(self.render_chat(prompt), add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError("an empty prompt gives the model nothing to continue")
        return ids

    def render_chat(self, conversation: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

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
        encoded = [self._prompt_ids(prompt) for prompt in prompts]
        # Batches are bounded in rows (prompts x samples), which is what memory scales with.
        prompts_per_batch = max(1, self.max_batch_size // per_prompt)
        completions: list[list[str]] = []
        with torch.inference_mode(), _seeded(sampling.seed):
            for start in range(0, len(encoded), prompts_per_batch):
                batch = encoded[start : start + prompts_per_batch]
                input_ids, attention_mask = _left_pad(batch, self._pad_id)
                output = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    generation_config=config,
                    tokenizer=self.tokenizer,
                )
                texts = self.tokenizer.batch_decode(output[:, input_ids.shape[1] :], skip_special_tokens=True)
                for index in range(len(batch)):
                    answers = [
                        _cut_at_stop(text, sampling.stop)
                        for text in texts[index * per_prompt : (index + 1) * per_prompt]
                    ]
                    completions.append(answers * n if greedy else answers)
        return completions

    # ---- judging ---------------------------------------------------------------------------------

    def _label_trie(self, answer_prefix: str, labels: tuple[str, ...]) -> LabelTrie:
        """The labels' token paths as the model would write them after the answer prefix.

        Labels are encoded in context, because a BPE can merge a label with the text before it.
        Byte-level BPEs split text into pieces before merging, so a label's tokens depend only on the
        few characters before it: the generation prompt's tail plus `answer_prefix`, the same for every
        conversation, hence one cached trie per (answer_prefix, labels). Where the prefix's own tokens
        change once a label follows (e.g. a prefix ending in a space that merges with a digit), the
        label is encoded alone.
        """
        key = (answer_prefix, labels)
        if key not in self._label_tries:
            context = self.render_chat([{"role": "user", "content": ""}]) + answer_prefix
            context_ids = self.tokenizer(context, add_special_tokens=False)["input_ids"]
            paths = {}
            for label in labels:
                ids = self.tokenizer(context + label, add_special_tokens=False)["input_ids"]
                if ids[: len(context_ids)] == context_ids and len(ids) > len(context_ids):
                    paths[label] = ids[len(context_ids) :]
                else:
                    paths[label] = self.tokenizer(label, add_special_tokens=False)["input_ids"]
            self._label_tries[key] = LabelTrie.from_paths(paths)
        return self._label_tries[key]

    def score_distribution(
        self, conversations: Sequence[list[Message]], answer_prefix: str, labels: Sequence[str]
    ) -> list[list[float]]:
        trie = self._label_trie(answer_prefix, tuple(labels))
        wanted = queries(trie)
        suffixes = context_sequences(trie)
        prefixes = [
            self.tokenizer(text, add_special_tokens=False)["input_ids"]
            for text in (self.render_chat(conversation) + answer_prefix for conversation in conversations)
        ]
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
        input_ids, attention_mask = _left_pad(sequences, self._pad_id)
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                logits_to_keep=keep,
                use_cache=False,
            ).logits
        return logits.float().log_softmax(dim=-1)


    # ---- embedding -------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], layer: int = -1, pooling: str = "mean",
              max_tokens: int = 128) -> np.ndarray:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")
        states = self.model.config.num_hidden_layers + 1
        if not -states <= layer < states:
            raise ValueError(f"layer {layer} is outside the model's {states} hidden states")
        encoded = [self._prompt_ids(text)[:max_tokens] for text in texts]
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        # Similar lengths share a batch, so little compute goes to padding.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.max_batch_size):
                rows = order[start : start + self.max_batch_size]
                input_ids, attention_mask = _right_pad([encoded[i] for i in rows], self._pad_id)
                hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                                    use_cache=False, logits_to_keep=1).hidden_states[layer].float()
                if pooling == "mean":
                    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
                else:
                    pooled = hidden[torch.arange(len(rows)), attention_mask.sum(dim=1) - 1]
                out[rows] = pooled.numpy()
        return out


def _right_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right padding: every sequence starts at position 0, so positions need no correction."""
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
    return input_ids, attention_mask


def _left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left padding: every sequence ends in the last column, where generation continues it."""
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, width - len(sequence) :] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, width - len(sequence) :] = 1
    return input_ids, attention_mask


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's RNG for one call without disturbing the process's own stream afterwards."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """Truncate at the earliest stop string; generate's own stop check only ends the loop."""
    found = [index for index in (text.find(stop) for stop in stops if stop) if index >= 0]
    return text[: min(found, default=len(text))]
