"""The judge's score as a probability distribution over the labels "0".."10", and score parsing.

The judge is read, not sampled: after the prompt and an answer prefix such as "Rating: [[", the model's
probability of writing each label next gives a real-valued score (the expected label). A label can take
several tokens: digit-splitting tokenizers (SmolLM2's among them) write "10" as "1", "0", so "1" is a
prefix of "10" and the probability of the token "1" is the probability of "1" OR "10". The labels'
token paths therefore form a trie; reading a path's probability needs the next-token distribution at
every proper prefix of it (a "context"), and the exact label "1" is the path "1" minus its label
children ("10").

This module is pure Python: an engine tokenises the labels, runs the forward pass that `context_sequences`
asks for, and hands the log-probabilities back to `label_distribution`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TokenIds = tuple[int, ...]

SCORE_LABELS: tuple[str, ...] = tuple(str(value) for value in range(11))


@dataclass(frozen=True)
class LabelTrie:
    """The labels' token paths, checked once; every other function here reads it.

    `paths[i]` is the token path of `labels[i]`, in the tokenisation the model would write after the
    prompt (see the engine for how that is obtained).
    """

    labels: tuple[str, ...]
    paths: tuple[TokenIds, ...]

    @classmethod
    def from_paths(cls, label_paths: Mapping[str, Sequence[int]]) -> LabelTrie:
        labels = tuple(label_paths)
        paths = tuple(tuple(int(token) for token in label_paths[label]) for label in labels)
        if not labels:
            raise ValueError("no labels to score")
        for label, path in zip(labels, paths):
            if not path:
                raise ValueError(f"label {label!r} tokenises to no tokens")
        if len(set(paths)) != len(paths):
            # Two labels the model cannot tell apart have no separate probabilities.
            raise ValueError(f"two labels share a token path: {dict(zip(labels, paths))}")
        return cls(labels, paths)

    def label_children(self, path: TokenIds) -> list[TokenIds]:
        """Label paths that extend `path` with no other label path in between.

        Only the nearest ones: the mass of "100" is already inside that of "10", so subtracting both
        from "1" would count it twice.
        """
        longer = [other for other in self.paths if len(other) > len(path) and other[: len(path)] == path]
        return [
            child
            for child in longer
            if not any(len(mid) < len(child) and child[: len(mid)] == mid for mid in longer)
        ]


def queries(trie: LabelTrie) -> dict[TokenIds, tuple[int, ...]]:
    """For each context (a proper prefix of a label path), the token ids whose log-probs are needed.

    The empty context is the position right after the prompt.
    """
    needed: dict[TokenIds, set[int]] = {}
    for path in trie.paths:
        for depth, token in enumerate(path):
            needed.setdefault(path[:depth], set()).add(token)
    return {context: tuple(sorted(tokens)) for context, tokens in sorted(needed.items())}


def context_sequences(trie: LabelTrie) -> list[TokenIds]:
    """The token suffixes to append to the prompt so that one forward pass sees every context.

    A sequence prompt+s yields next-token logits at every prefix of s (the empty one included), so one
    sequence serves all contexts along it. The fewest sequences are the contexts that are not a prefix
    of another one; for digit labels that is usually one sequence (the prompt plus "1").
    """
    contexts = list(queries(trie))
    return [
        context
        for context in contexts
        if not any(len(other) > len(context) and other[: len(context)] == context for other in contexts)
    ]


def label_distribution(trie: LabelTrie, logprobs: Mapping[TokenIds, Mapping[int, float]]) -> list[float]:
    """The probability that the model writes exactly each label, renormalised over the labels.

    `logprobs[context][token]` is log P(token | prompt + context) for every pair that `queries(trie)`
    lists. A label's exact probability is its path's probability minus its label children's (the judge
    writes "1" and stops, not "10"); it is clamped at 0 because numerical noise can push it just below.
    If no label has any probability left, the model gave no information about the score, and the
    uniform distribution says exactly that (the expected score is then the midpoint), rather than
    failing a whole judging batch on one degenerate row.
    """

    def path_probability(path: TokenIds) -> float:
        return math.exp(sum(logprobs[path[:depth]][token] for depth, token in enumerate(path)))

    exact = [
        max(0.0, path_probability(path) - sum(path_probability(child) for child in trie.label_children(path)))
        for path in trie.paths
    ]
    total = sum(exact)
    if total <= 0.0:
        return [1.0 / len(exact)] * len(exact)
    return [probability / total for probability in exact]


def expected_score(dist: Sequence[float], labels: Sequence[str] = SCORE_LABELS) -> float:
    """The probability-weighted mean label value: the judge's real-valued score."""
    if len(dist) != len(labels):
        raise ValueError(f"{len(dist)} probabilities for {len(labels)} labels")
    return sum(probability * float(label) for probability, label in zip(dist, labels))


def argmax_score(dist: Sequence[float], labels: Sequence[str] = SCORE_LABELS) -> int:
    """The most probable label's value (the lowest one on a tie), as a greedy judge would write it."""
    if len(dist) != len(labels):
        raise ValueError(f"{len(dist)} probabilities for {len(labels)} labels")
    best = max(range(len(dist)), key=lambda index: (dist[index], -index))
    return int(labels[best])


_BRACKET_SCORE = re.compile(r"\[\[\s*(-?\d+)\s*\]\]")


def parse_bracket_score(text: str) -> int | None:
    """The score in the first "[[N]]" of a judge's written answer, or None if absent or not in 0..10.

    An out-of-range first bracket gives None rather than a search for a later one: the judge's verdict
    is the first bracket it writes, and a bad one means the answer cannot be trusted.
    """
    match = _BRACKET_SCORE.search(text)
    if match is None:
        return None
    value = int(match.group(1))
    return value if 0 <= value <= 10 else None
