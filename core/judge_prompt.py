"""The judge's prompt: an MT-Bench-style request for an impartial 0..10 rating written as [[N]].

The same rendering is used to train the judge (prompt -> "Rating: [[N]]") and to score with it
(prompt + "Rating: [[" -> distribution over the next label), so train and inference never drift. The base
model, which was never trained to judge, sees the same request after three solved examples (few-shot).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from alma.core.errors import ConfigError
from alma.core.seeds import JudgeExample

LABELS = tuple(str(i) for i in range(11))

TEMPLATE = """Please act as an impartial judge and rate the response of an AI assistant to the user's \
request below. Consider helpfulness, relevance, accuracy, depth, creativity and level of detail. \
Scale: {rubric}
Answer with the rating only, strictly in this format: "Rating: [[N]]" where N is an integer from 0 to 10.

[User request]
{prompt}

[Assistant response]
{response}"""


# The scale as the judge sees it: one line, because it is read on every one of millions of judgments.
# The full annotator rubric (alma/seeds/rubric.md) is what people use to label the judge seed.
SCALE = ("0 = unusable, off-topic or harmful; 2 = mostly wrong; 4 = partly correct with notable errors; "
         "5 = acceptable but minimal; 7 = good, clear and useful; 9 = excellent and thorough; "
         "10 = outstanding, nothing to add.")


def load_rubric(path: str | None) -> str:
    """The scale text put into every judge prompt: the config's file, or the built-in one-line SCALE."""
    if not path:
        return SCALE
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"judge.rubric {path}: cannot read it ({e.__class__.__name__})") from None
    if not text:
        raise ConfigError(f"judge.rubric {path}: the file is empty")
    return text


def judge_messages(prompt: str, response: str, rubric: str) -> list[dict[str, str]]:
    """The chat conversation the judge sees (one user turn)."""
    return [{"role": "user", "content": TEMPLATE.format(rubric=rubric, prompt=prompt, response=response)}]


def judge_target(score: int, answer_prefix: str) -> str:
    """The assistant answer the judge is trained to write for a human score."""
    return f"{answer_prefix}{score}]]"


def pick_shots(examples: Sequence[JudgeExample], k: int, seed: int) -> list[JudgeExample]:
    """k solved examples for a few-shot judge prompt, spread over the score range, in a seeded order.

    Spread rather than random, because shots that all say [[9]] teach a base model to write 9 whatever
    it reads (few-shot label bias): the examples are sorted by score (ties in seeded order) and one is
    taken from the middle of each of k equal slices.
    """
    rng = random.Random(f"judge-shots-{seed}")
    shuffled = list(examples)
    rng.shuffle(shuffled)
    ranked = sorted(shuffled, key=lambda example: example.score)
    picks = [ranked[int((i + 0.5) * len(ranked) / k)] for i in range(min(k, len(ranked)))]
    rng.shuffle(picks)
    return picks


def few_shot_messages(shots: Sequence[JudgeExample], prompt: str, response: str, rubric: str,
                      answer_prefix: str) -> list[dict[str, str]]:
    """The base judge's conversation: each shot as a judge request answered with its human rating, then
    the pair to judge, in the same template and answer format as the fine-tuned judge, so that an eval
    compares training, not prompts."""
    messages: list[dict[str, str]] = []
    for shot in shots:
        messages += judge_messages(shot.prompt, shot.response, rubric)
        messages.append({"role": "assistant", "content": judge_target(shot.score, answer_prefix)})
    return messages + judge_messages(prompt, response, rubric)
