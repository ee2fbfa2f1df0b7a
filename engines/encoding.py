"""What every engine does with the tokenizer: chat rendering, prompt ids, end tokens, score-label paths.

Engines differ in how they run the model, not in what they feed it. Both backends send these exact token
ids to the model, so a raw prompt, a chat and a judge's answer prefix mean the same to transformers and
to vLLM, and both read the probabilities of the same label tokens. No torch here: the tokenizer only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alma.core.engine_api import Message, Prompt
from alma.core.scoring import LabelTrie


class PromptEncoder:
    """A checkpoint's tokenizer, with the token-level rules every engine shares.

    `model_eos` is the model's own end-of-text id(s) (its generation config), added to the tokenizer's.
    """

    def __init__(self, tokenizer: Any, model_eos: int | list[int] | None, checkpoint: str) -> None:
        self.tokenizer = tokenizer
        self.end_token_ids = _end_token_ids(tokenizer, model_eos, checkpoint)
        self._label_tries: dict[tuple[str, tuple[str, ...]], LabelTrie] = {}

    def render_chat(self, conversation: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def prompt_ids(self, prompt: Prompt) -> list[int]:
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

    def judge_ids(self, conversation: list[Message], answer_prefix: str) -> list[int]:
        """The judge's input: the rendered conversation followed by the answer prefix ("Rating: [[")."""
        return self.tokenizer(self.render_chat(conversation) + answer_prefix, add_special_tokens=False)["input_ids"]

    def label_trie(self, answer_prefix: str, labels: Sequence[str]) -> LabelTrie:
        """The labels' token paths as the model would write them after the answer prefix.

        Labels are encoded in context, because a BPE can merge a label with the text before it.
        Byte-level BPEs split text into pieces before merging, so a label's tokens depend only on the
        few characters before it: the generation prompt's tail plus `answer_prefix`, the same for every
        conversation, hence one cached trie per (answer_prefix, labels). Where the prefix's own tokens
        change once a label follows (e.g. a prefix ending in a space that merges with a digit), the
        label is encoded alone.
        """
        key = (answer_prefix, tuple(labels))
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


def _end_token_ids(tokenizer: Any, model_eos: int | list[int] | None, checkpoint: str) -> list[int]:
    """Every id that ends an answer: the tokenizer's eos, the model's, and ChatML's <|im_end|>."""
    candidates = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")]
    candidates += model_eos if isinstance(model_eos, list) else [model_eos]
    ids: list[int] = []
    for token in candidates:
        if token is not None and token != tokenizer.unk_token_id and token not in ids:
            ids.append(token)
    if not ids:
        raise ValueError(f"{checkpoint}: the tokenizer and model define no end-of-text token")
    return ids


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """Truncate at the earliest stop string (an engine's own stop check may only end the loop)."""
    found = [index for index in (text.find(stop) for stop in stops if stop) if index >= 0]
    return text[: min(found, default=len(text))]
