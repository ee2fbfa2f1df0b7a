"""The judge's three scoring modes behind one call: `expected`, `argmax` and `sampled`.

- expected (the paper's "score aggregation", the default): one forward pass reads the probability of
  each label 0..10 after the answer prefix; the score is their probability-weighted mean, a real number,
  so two responses rarely tie.
- argmax: the same distribution's most probable label, i.e. the integer a greedy judge would write. It
  is what a classic integer judge gives, at the cost of the expected mode.
- sampled: k judgments are sampled as text after the answer prefix, "[[N]]" is parsed from each, and the
  parsed scores are averaged: the classic baseline, k generations per judgment. A reply with no valid
  "[[N]]" is never turned into a score; it is counted as missing, and a pair whose k replies all fail
  gets score NaN (downstream best-of-N skips it).

The per-judgment arithmetic is pure; `judge` drives an engine through the Engine protocol only, so the
Serve deployment, the in-process eval and any other caller score the same way.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from alma.core.engine_api import Engine, Message, Sampling
from alma.core.judge_prompt import LABELS
from alma.core.scoring import argmax_score, expected_score, parse_bracket_score

SCORING_MODES = ("expected", "argmax", "sampled")
DISTRIBUTION_MODES = ("expected", "argmax")

# "10]]" plus an end token is at most five tokens in the tokenizers seen so far; a judgment that has not
# closed its brackets by then is not going to, and every extra token is paid k times per judgment.
SAMPLE_MAX_NEW_TOKENS = 8


@dataclass(frozen=True)
class Judgment:
    """One scored (prompt, response) pair.

    `distribution` has one entry per label 0..10: the renormalised label probabilities for the
    distribution modes; for `sampled`, the share of the k replies that wrote each label (so it sums to
    1 - missing/k). `missing` counts sampled replies without a valid "[[N]]" (always 0 otherwise).
    """

    score: float
    distribution: list[float]
    mode: str
    missing: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_mode(mode: str) -> str:
    if mode not in SCORING_MODES:
        raise ValueError(f"unknown scoring mode {mode!r}; choose one of {', '.join(SCORING_MODES)}")
    return mode


def from_distribution(distribution: Sequence[float], mode: str) -> Judgment:
    """An `expected` or `argmax` judgment read from one label distribution."""
    if mode == "expected":
        score = expected_score(distribution, LABELS)
    elif mode == "argmax":
        score = float(argmax_score(distribution, LABELS))
    else:
        raise ValueError(f"mode {mode!r} is not read from a distribution (those are {DISTRIBUTION_MODES})")
    return Judgment(score, list(distribution), mode)


def from_samples(replies: Sequence[str], answer_prefix: str) -> Judgment:
    """A `sampled` judgment from k replies that continue `answer_prefix`.

    Each reply is parsed together with the prefix, since the prefix (e.g. "Rating: [[") holds the
    opening brackets of "[[N]]"; a reply that writes its own brackets parses too.
    """
    if not replies:
        raise ValueError("no sampled replies to aggregate")
    parsed = [parse_bracket_score(answer_prefix + reply) for reply in replies]
    scores = [value for value in parsed if value is not None]
    counts = [0] * len(LABELS)
    for value in scores:
        counts[value] += 1
    return Judgment(
        score=sum(scores) / len(scores) if scores else math.nan,
        distribution=[count / len(replies) for count in counts],
        mode="sampled",
        missing=len(replies) - len(scores),
    )


def batch_seed(texts: Iterable[str]) -> int:
    """A sampling seed derived from what is judged, so that rescoring the same batch agrees."""
    return zlib.crc32("\x00".join(texts).encode("utf-8"))


def sample_judgments(engine: Engine, conversations: Sequence[list[Message]], answer_prefix: str, samples: int,
                     temperature: float, seed: int | None) -> list[Judgment]:
    """k sampled replies per conversation, continued from the rendered chat plus `answer_prefix`.

    Temperature 1 with no nucleus cut samples the judge's own distribution, so the sampled mean
    estimates the expected score, with sampling noise and format failures on top: exactly the
    baseline the paper compares against.
    """
    prompts = [engine.render_chat(conversation) + answer_prefix for conversation in conversations]
    sampling = Sampling(max_new_tokens=SAMPLE_MAX_NEW_TOKENS, temperature=temperature, top_p=1.0, seed=seed)
    return [from_samples(replies, answer_prefix) for replies in engine.generate(prompts, samples, sampling)]


def judge(engine: Engine, conversations: Sequence[list[Message]], answer_prefix: str, mode: str,
          samples: int = 5, temperature: float = 1.0, seed: int | None = None) -> list[Judgment]:
    """One judgment per judge conversation (see core.judge_prompt), in the given scoring mode."""
    if check_mode(mode) == "sampled":
        return sample_judgments(engine, conversations, answer_prefix, samples, temperature, seed)
    return [from_distribution(dist, mode) for dist in engine.score_distribution(conversations, answer_prefix, LABELS)]
