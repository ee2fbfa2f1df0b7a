"""Prompt-pool logic: few-shot requests for the base model, parsing its reply, filters and de-duplication.

The base model is not a chat model, so it is shown a plain text list of example requests and asked to
continue the list with one more; its completion up to the end of the line is the new prompt.
De-duplication is exact (normalised text) and then near (MinHash + LSH over word shingles, core.near_dup).
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    from alma.core.near_dup import NearDuplicateIndex

FEW_SHOT_HEADER = "Below are requests that users sent to a helpful AI assistant, one per line.\n\n"
ITEM_PREFIX = "Request: "

# Filter names, in the order they are applied; the funnel report uses them as keys.
FILTERS = ("empty", "too_short", "too_long", "non_text", "copies_example", "duplicate", "near_duplicate")


def few_shot_request(examples: Sequence[str]) -> str:
    """The raw text the base model completes: the examples as a list, then an open item."""
    lines = [ITEM_PREFIX + " ".join(e.split()) for e in examples]
    return FEW_SHOT_HEADER + "\n".join(lines) + "\n" + ITEM_PREFIX


def sample_few_shot(seed_prompts: Sequence[str], k: int, rng: random.Random) -> list[str]:
    """k distinct seed prompts drawn at random (fewer when the seed set is smaller)."""
    return rng.sample(list(seed_prompts), min(k, len(seed_prompts)))


def parse_reply(reply: str) -> str:
    """The new prompt in the model's continuation: its first line, without a repeated item prefix."""
    text = reply.split("\n", 1)[0].strip()
    if text.startswith(ITEM_PREFIX.strip()):
        text = text[len(ITEM_PREFIX.strip()):].strip()
    return text


def normalize(text: str) -> str:
    """Case-, space- and punctuation-insensitive form used for exact de-duplication."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", "", text)
    return " ".join(text.split())


def prompt_id(text: str) -> str:
    """Stable id of a prompt: a hash of its normalised text (so duplicates share an id)."""
    return hashlib.sha256(normalize(text).encode()).hexdigest()[:16]


def letter_ratio(text: str) -> float:
    if not text:
        return 0.0
    return sum(ch.isalpha() or ch.isspace() for ch in text) / len(text)


@dataclass
class PromptFilter:
    """Applies the filters in FILTERS order and keeps a funnel count of what each one dropped.

    With a `near_dup` index, a prompt that nearly copies a kept prompt or a seed prompt (the blocked
    ones are put in the index first) is dropped as "near_duplicate"; without one that filter drops nothing.
    """

    min_chars: int
    max_chars: int
    min_letter_ratio: float
    blocked: set[str] = field(default_factory=set)  # normalised seed prompts: never re-emitted as "new"
    near_dup: NearDuplicateIndex | None = None
    seen: set[str] = field(default_factory=set)
    dropped: Counter = field(default_factory=Counter)
    kept: int = 0

    def __post_init__(self) -> None:
        if self.near_dup is not None:
            for text in sorted(self.blocked):
                self.near_dup.check_and_add(text)

    def reason(self, text: str, examples: Iterable[str] = ()) -> str | None:
        """Why `text` is dropped, or None when it is kept (and then remembered for de-duplication)."""
        norm = normalize(text)
        if not norm:
            return "empty"
        if len(text) < self.min_chars:
            return "too_short"
        if len(text) > self.max_chars:
            return "too_long"
        if letter_ratio(text) < self.min_letter_ratio:
            return "non_text"
        if norm in self.blocked or norm in {normalize(e) for e in examples}:
            return "copies_example"
        if norm in self.seen:
            return "duplicate"
        if self.near_dup is not None and self.near_dup.check_and_add(text):
            return "near_duplicate"
        self.seen.add(norm)
        return None

    def keep(self, text: str, examples: Iterable[str] = ()) -> bool:
        why = self.reason(text, examples)
        if why is None:
            self.kept += 1
            return True
        self.dropped[why] += 1
        return False

    def funnel(self, attempts: int) -> dict[str, int]:
        """Rows remaining after each filter, starting from the attempts made."""
        out, left = {"attempts": attempts}, attempts
        for name in FILTERS:
            left -= self.dropped[name]
            out[f"after_{name}"] = left
        return out
