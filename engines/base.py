"""The inference engine contract shared by every backend (transformers now, vLLM later).

Actors talk to an engine, never to a model library directly, so that the backend is a config choice.
An engine holds ONE checkpoint; the generator deployment keeps one engine per checkpoint it serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, Union

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
    """Two operations: sample completions, and read the judge's distribution over score labels."""

    checkpoint: str

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
