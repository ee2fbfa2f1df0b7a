"""The inference engine contract shared by every backend (transformers, vLLM).

Actors talk to an engine, never to a model library directly, so that the backend is a config choice.
An engine holds ONE checkpoint; the generator deployment keeps one engine per checkpoint it serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Sequence, Union, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

# A prompt is either raw text (completed as is: used for the base model's few-shot prompt writing)
# or a chat conversation (a list of {"role", "content"} dicts rendered with the model's chat template).
Message = dict[str, str]
Prompt = Union[str, list[Message]]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings for one generate call (mirrors config.SamplingConfig, without pydantic)."""

    max_new_tokens: int = 64
    temperature: float = 0.8
    top_p: float = 0.95
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None


class Engine(Protocol):
    """Sample completions, read the judge's distribution over score labels, render a chat as text, and
    embed texts (pooled hidden states, for clustering the prompt pool)."""

    checkpoint: str

    def render_chat(self, conversation: list[Message]) -> str:
        """The conversation as the model reads it: chat template applied, generation prompt appended.

        Appending text to it and passing the result to `generate` as a raw prompt continues the
        assistant's turn from that text (the sampled judge continues "Rating: [[" this way); an engine
        must then not add a second BOS token to a text that already starts with one.
        """
        ...

    def generate(self, prompts: Sequence[Prompt], n: int, sampling: Sampling) -> list[list[str]]:
        """Return, for each prompt, `n` sampled completions (text only, stop strings cut off).

        With `sampling.seed` set, the same call returns the same completions.
        """
        ...

    def score_distribution(
        self, conversations: Sequence[list[Message]], answer_prefix: str, labels: Sequence[str]
    ) -> list[list[float]]:
        """Return, for each conversation, the probability that the model writes each label next.

        The conversation is rendered with the chat template and a generation prompt, `answer_prefix`
        is appended (e.g. "Rating: [["), and the model's probability of continuing with exactly each
        label (multi-token labels included, see core.scoring) is read in one forward pass, then
        renormalised over `labels`. Each returned row has len(labels) entries summing to 1.
        """
        ...

    def embed(self, texts: Sequence[str], layer: int = -1, pooling: str = "mean",
              max_tokens: int = 128) -> np.ndarray:
        """Return a (len(texts), hidden_size) float32 array: each raw text's hidden states, pooled.

        `layer` indexes the model's num_layers + 1 hidden states (0: the token embeddings, -1: the last
        layer); `pooling` is "mean" (over the text's tokens) or "last" (its last token). Texts are
        encoded as raw text (no chat template) and cut to their first `max_tokens` tokens. A row does not
        depend on which other texts share its call.
        """
        ...

    def close(self) -> None:
        """Release the model (and any processes serving it); the engine is unusable afterwards."""
        ...


@runtime_checkable
class ConcurrentEngine(Protocol):
    """An engine that batches concurrent calls itself (vLLM's continuous batching).

    A Serve replica awaits these from its event loop without taking turns: requests that arrive while
    others run join the running batch instead of queueing behind it. Same results as the sync methods.
    """

    async def agenerate(self, prompts: Sequence[Prompt], n: int, sampling: Sampling) -> list[list[str]]:
        ...

    async def ascore_distribution(
        self, conversations: Sequence[list[Message]], answer_prefix: str, labels: Sequence[str]
    ) -> list[list[float]]:
        ...
