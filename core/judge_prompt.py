"""The judge's prompt: an MT-Bench-style request for an impartial 0..10 rating written as [[N]].

The same rendering is used to train the judge (prompt -> "Rating: [[N]]") and to score with it
(prompt + "Rating: [[" -> distribution over the next label), so train and inference never drift.
"""

from __future__ import annotations

from pathlib import Path

from alma.core.seeds import bundled

LABELS = tuple(str(i) for i in range(11))

TEMPLATE = """Please act as an impartial judge and rate the response of an AI assistant to the user's \
request below. Consider helpfulness, relevance, accuracy, depth, creativity and level of detail. \
Use this rubric:
{rubric}
Answer with the rating only, strictly in this format: "Rating: [[N]]" where N is an integer from 0 to 10.

[User request]
{prompt}

[Assistant response]
{response}"""


def load_rubric(path: str | None) -> str:
    return Path(path).read_text(encoding="utf-8").strip() if path else bundled("rubric.md").read_text().strip()


def judge_messages(prompt: str, response: str, rubric: str) -> list[dict[str, str]]:
    """The chat conversation the judge sees (one user turn)."""
    return [{"role": "user", "content": TEMPLATE.format(rubric=rubric, prompt=prompt, response=response)}]


def judge_target(score: int, answer_prefix: str) -> str:
    """The assistant answer the judge is trained to write for a human score."""
    return f"{answer_prefix}{score}]]"
