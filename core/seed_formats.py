"""The row layouts seed files come in, and what each maps to (reading files and dropping rows: core/seeds.py).

A row's layout is told by its field names; a row holding two layouts is refused, since which one it means
is a guess. docs/seed-data.md has every layout with an example row.

SFT rows, one conversation each: `messages` (role/content), ShareGPT `conversations` (from/value), Alpaca
`instruction`/`input`/`output`, `prompt`/`completion` (each a string or a list of messages) and
`prompt`/`response`. The last turn is the assistant's answer that is trained on; every earlier turn is its
prompt (context). Fields outside the layout (ids, source, category, a pre-rendered text) are ignored.

Judge rows: `prompt`/`response`/`score` (an integer 0..10), or per-response ratings as HelpSteer (flat rows,
attributes on 0-4) and UltraFeedback (`instruction` + rated `completions`, or flattened rows, on 1-5) ship
them. Ratings become a score by `rating_score`: the mean of the chosen attributes, stretched from the
rating scale onto 0..10 and rounded half up. Pairwise data (`chosen`/`rejected`) is refused: the judge
learns an absolute score per response, which an order between two responses does not give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from alma.core.errors import InputError

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant"}
CHAT_ROLES = {"system", "user", "assistant"}
SCORE_MIN, SCORE_MAX = 0, 10

# The field each SFT layout is told by, in the order a mixed row's error names them.
SFT_LAYOUT_OF = {"messages": "messages", "conversations": "conversations", "instruction": "alpaca",
                 "input": "alpaca", "output": "alpaca", "prompt": "prompt", "completion": "prompt/completion",
                 "response": "prompt/response"}
SFT_LAYOUT_FIELDS = {"messages": {"messages"}, "conversations": {"conversations"},
                     "alpaca": {"instruction", "input", "output"}, "prompt/completion": {"prompt", "completion"},
                     "prompt/response": {"prompt", "response"}}
SFT_LAYOUTS_HELP = "messages, conversations, instruction/input/output, prompt/completion or prompt/response"

HELPSTEER_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
ULTRAFEEDBACK_ATTRIBUTES = ("helpfulness", "honesty", "instruction_following", "truthfulness")
RATING_ATTRIBUTES = tuple(dict.fromkeys(HELPSTEER_ATTRIBUTES + ULTRAFEEDBACK_ATTRIBUTES))
# The rating scale each judge layout ships with; "ratings" (a lone helpfulness, either data set) has none.
SCALES = {"helpsteer": (0, 4), "ultrafeedback": (1, 5), "ultrafeedback-flat": (1, 5)}
# Judge rows may carry these besides their layout's fields; they are read past.
METADATA_FIELDS = ("id", "prompt_id", "source", "category")
ULTRAFEEDBACK_FIELDS = ("models", "correct_answers", "incorrect_answers")  # UltraFeedback's own, read past
PAIRWISE_FIELDS = ("chosen", "rejected")


class BadRow(InputError):
    """One bad row. `reason` is the short kind it is counted under when invalid rows are dropped."""

    def __init__(self, where: tuple[str, int], field: str | None, problem: str, reason: str):
        super().__init__(where[0], where[1], field, problem)
        self.reason = reason


@dataclass(frozen=True)
class SftExample:
    """One seed conversation: the prompt turns and the final assistant answer that is trained on."""

    prompt: list[dict[str, str]]
    response: str

    @property
    def user_prompt(self) -> str:
        """The last user turn: what the few-shot prompt writer imitates."""
        return next(m["content"] for m in reversed(self.prompt) if m["role"] == "user")


@dataclass(frozen=True)
class JudgeExample:
    prompt: str
    response: str
    score: int


@dataclass(frozen=True)
class SeedRules:
    """How seed files are read: whether bad rows are dropped, and how ratings become judge scores."""

    drop_invalid: bool = False
    judge_attributes: tuple[str, ...] = ("helpfulness",)
    judge_scale: tuple[float, float] | None = None  # None: the scale of the row's layout (SCALES)


def rating_score(ratings: list[Fraction], scale: tuple[float, float]) -> int:
    """round(10 * (mean - min) / (max - min)), half up, in exact arithmetic so 7.5 is never 7.4999."""
    low, high = (Fraction(str(bound)) for bound in scale)
    mean = sum(ratings, Fraction(0)) / len(ratings)
    return math.floor(10 * (mean - low) / (high - low) + Fraction(1, 2))


def scale_text(scale: tuple[float, float]) -> str:
    return f"{scale[0]:g}..{scale[1]:g}"


def _text(row: dict[str, Any], key: str, where: tuple[str, int], field: str | None = None) -> str:
    name = field or key
    if key not in row:
        raise BadRow(where, name, "missing", "missing")
    value = row[key]
    if not isinstance(value, str):
        raise BadRow(where, name, f"expected a string, got {type(value).__name__}", "wrong type")
    if not value.strip():
        raise BadRow(where, name, "empty", "empty")
    return value


def _object(row: Any, where: tuple[str, int]) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise BadRow(where, None, "expected a JSON object", "not an object")
    return row


def _turns(row: dict[str, Any], key: str, role_key: str, text_key: str, roles: dict[str, str],
           where: tuple[str, int]) -> list[dict[str, str]]:
    turns = row[key]
    if not isinstance(turns, list) or not turns:
        raise BadRow(where, key, "expected a non-empty list of turns", "wrong type")
    out = []
    for i, turn in enumerate(turns):
        field = f"{key}[{i}]"
        if not isinstance(turn, dict):
            raise BadRow(where, field, "expected an object", "wrong type")
        role = turn.get(role_key)
        if role not in roles:
            raise BadRow(where, f"{field}.{role_key}", f"unknown role {role!r} (expected one of {sorted(roles)})",
                         "unknown role")
        out.append({"role": roles[role], "content": _text(turn, text_key, where)})
    return out


def _conversation(turns: list[dict[str, str]], key: str, where: tuple[str, int]) -> SftExample:
    """The last turn is the trained answer; the earlier ones, a user turn among them, are its prompt."""
    if turns[-1]["role"] != "assistant":
        raise BadRow(where, key, "the last turn must be the assistant's answer", "last turn not the answer")
    if not any(t["role"] == "user" for t in turns[:-1]):
        raise BadRow(where, key, "no user turn before the answer", "no user turn")
    return SftExample(turns[:-1], turns[-1]["content"])


def sft_layout(row: dict[str, Any], where: tuple[str, int]) -> str:
    """The row's SFT layout, from its field names; a row holding two is refused."""
    first: dict[str, str] = {}  # layout -> its first field in the row
    for key, layout in SFT_LAYOUT_OF.items():
        if key in row:
            first.setdefault(layout, key)
    told = [layout for layout in first if layout != "prompt"]
    if len(told) > 1:
        raise BadRow(where, first[told[1]], f"the row also has '{first[told[0]]}': use one layout per row "
                     f"({SFT_LAYOUTS_HELP})", "mixed layouts")
    if told and "prompt" in first and told[0] not in ("prompt/completion", "prompt/response"):
        raise BadRow(where, "prompt", f"the row also has '{first[told[0]]}': use one layout per row "
                     f"({SFT_LAYOUTS_HELP})", "mixed layouts")
    if not told and "prompt" not in first:
        raise BadRow(where, None, "expected 'messages', 'conversations', 'instruction'+'output', "
                     "'prompt'+'completion' or 'prompt'+'response'", "no layout")
    return told[0] if told else "prompt/response"


def sft_row(row: Any, where: tuple[str, int]) -> tuple[str, SftExample, list[str]]:
    """(layout, the example, the row's fields that were read past)."""
    row = _object(row, where)
    layout = sft_layout(row, where)
    if layout == "messages":
        example = _conversation(_turns(row, "messages", "role", "content", {r: r for r in CHAT_ROLES}, where),
                                "messages", where)
    elif layout == "conversations":
        example = _conversation(_turns(row, "conversations", "from", "value", SHAREGPT_ROLES, where),
                                "conversations", where)
    elif layout == "alpaca":
        instruction = _text(row, "instruction", where)
        context = row.get("input")
        if context is not None and not isinstance(context, str):
            raise BadRow(where, "input", f"expected a string, got {type(context).__name__}", "wrong type")
        output = _text(row, "output", where)
        user = f"{instruction}\n\n{context}" if context and context.strip() else instruction
        example = SftExample([{"role": "user", "content": user}], output)
    elif layout == "prompt/completion":
        example = _prompt_completion(row, where)
    else:
        example = SftExample([{"role": "user", "content": _text(row, "prompt", where)}],
                             _text(row, "response", where))
    return layout, example, sorted(set(row) - SFT_LAYOUT_FIELDS[layout])


def _prompt_completion(row: dict[str, Any], where: tuple[str, int]) -> SftExample:
    """TRL's layout: each side a string or a list of messages; the completion's last message is the answer."""
    if "prompt" not in row:
        raise BadRow(where, "prompt", "missing", "missing")
    if isinstance(row["prompt"], list):
        prompt = _turns(row, "prompt", "role", "content", {r: r for r in CHAT_ROLES}, where)
    else:
        prompt = [{"role": "user", "content": _text(row, "prompt", where)}]
    if isinstance(row["completion"], list):
        completion = _turns(row, "completion", "role", "content", {"assistant": "assistant"}, where)
    else:
        completion = [{"role": "assistant", "content": _text(row, "completion", where)}]
    if not any(t["role"] == "user" for t in prompt):
        raise BadRow(where, "prompt", "no user turn before the answer", "no user turn")
    return SftExample(prompt + completion[:-1], completion[-1]["content"])


def judge_row(row: Any, where: tuple[str, int], rules: SeedRules) -> tuple[str, list[JudgeExample]]:
    """(layout, the row's triplets): one per row, or one per rated completion of an UltraFeedback row."""
    row = _object(row, where)
    pairwise = [key for key in PAIRWISE_FIELDS if key in row]
    if pairwise:
        raise BadRow(where, pairwise[0], "pairwise preferences (chosen/rejected) cannot train the judge: it learns "
                     "an absolute 0..10 score per response, and a pair only says which of two is better; give each "
                     "response its own score or ratings", "pairwise data")
    if "completions" in row:
        return "ultrafeedback", _ultrafeedback(row, where, rules)
    rated = [key for key in RATING_ATTRIBUTES if key in row]
    if rated and "score" in row:
        raise BadRow(where, rated[0], "the row also has 'score': use one layout per row (a score, or ratings)",
                     "mixed layouts")
    if rated:
        return _flat_ratings(row, rated, where, rules)
    _known(row, {"prompt", "response", "score"}, "prompt, response, score", where)
    prompt, response = _text(row, "prompt", where), _text(row, "response", where)
    if "score" not in row:
        raise BadRow(where, "score", "missing (a 0..10 score, or per-response ratings such as helpfulness)",
                     "missing")
    return "score", [JudgeExample(prompt, response, _score(row["score"], where))]


def _known(row: dict[str, Any], fields: set[str], expected: str, where: tuple[str, int]) -> None:
    extra = sorted(set(row) - fields - set(METADATA_FIELDS))
    if extra:
        raise BadRow(where, extra[0], f"unknown field (expected {expected})", "unknown field")


def _score(score: Any, where: tuple[str, int]) -> int:
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise BadRow(where, "score", f"expected a number 0..10, got {score!r}", "wrong type")
    if score != int(score):
        raise BadRow(where, "score", f"expected a whole number 0..10, got {score}", "not a whole number")
    if not SCORE_MIN <= score <= SCORE_MAX:
        raise BadRow(where, "score", f"{score} is outside 0..10", "out of range")
    return int(score)


def _flat_ratings(row: dict[str, Any], rated: list[str], where: tuple[str, int],
                  rules: SeedRules) -> tuple[str, list[JudgeExample]]:
    helpsteer = [a for a in rated if a not in ULTRAFEEDBACK_ATTRIBUTES]
    ultrafeedback = [a for a in rated if a not in HELPSTEER_ATTRIBUTES]
    if helpsteer and ultrafeedback:
        raise BadRow(where, ultrafeedback[0], f"the row also has '{helpsteer[0]}': HelpSteer and UltraFeedback "
                     "ratings in one row", "mixed layouts")
    _known(row, {"prompt", "response", *rated}, f"prompt, response and ratings ({', '.join(RATING_ATTRIBUTES)})",
           where)
    prompt, response = _text(row, "prompt", where), _text(row, "response", where)
    layout = "helpsteer" if helpsteer else "ultrafeedback-flat" if ultrafeedback else "ratings"
    scale = rules.judge_scale or SCALES.get(layout)
    if scale is None:
        raise BadRow(where, rated[0], "a lone helpfulness rating may be HelpSteer's 0-4 or UltraFeedback's 1-5: "
                     "set seeds.judge_scale (e.g. --set 'seeds.judge_scale=[0,4]')", "unknown scale")
    ratings = [_rating(row, a, a, rated, where, scale) for a in rules.judge_attributes]
    return layout, [JudgeExample(prompt, response, rating_score(ratings, scale))]


def _ultrafeedback(row: dict[str, Any], where: tuple[str, int], rules: SeedRules) -> list[JudgeExample]:
    _known(row, {"instruction", "completions", *ULTRAFEEDBACK_FIELDS},
           f"instruction, completions, {', '.join(ULTRAFEEDBACK_FIELDS)}", where)
    prompt = _text(row, "instruction", where)
    completions = row["completions"]
    if not isinstance(completions, list) or not completions:
        raise BadRow(where, "completions", "expected a non-empty list of rated responses", "wrong type")
    scale = rules.judge_scale or SCALES["ultrafeedback"]
    out = []
    for i, completion in enumerate(completions):
        field = f"completions[{i}]"
        if not isinstance(completion, dict):
            raise BadRow(where, field, "expected an object", "wrong type")
        response = _text(completion, "response", where, f"{field}.response")
        notes = completion.get("annotations")
        if not isinstance(notes, dict):
            raise BadRow(where, f"{field}.annotations", "missing" if notes is None else "expected an object",
                         "missing" if notes is None else "wrong type")
        present = [a for a in RATING_ATTRIBUTES if a in notes]
        ratings = [_rating(notes, a, f"{field}.annotations.{a}", present, where, scale) for a in rules.judge_attributes]
        out.append(JudgeExample(prompt, response, rating_score(ratings, scale)))
    return out


def _rating(holder: dict[str, Any], attribute: str, field: str, present: list[str], where: tuple[str, int],
            scale: tuple[float, float]) -> Fraction:
    """One rating: a number, a numeric string, or UltraFeedback's {"Rating": "4", "Rationale": ...}."""
    if attribute not in holder:
        raise BadRow(where, field, f"missing (seeds.judge_attributes asks for it; the row rates "
                     f"{', '.join(present) or 'nothing'})", "missing")
    value = holder[attribute]
    if isinstance(value, dict):
        field = f"{field}.Rating"
        if "Rating" not in value:
            raise BadRow(where, field, "missing", "missing")
        value = value["Rating"]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRow(where, field, f"expected a rating, got {type(value).__name__}", "wrong type")
    try:
        rating = Fraction(value.strip() if isinstance(value, str) else str(value))
    except (ValueError, ZeroDivisionError):
        raise BadRow(where, field, f"not a rating: {value!r}", "not a rating") from None
    if not Fraction(str(scale[0])) <= rating <= Fraction(str(scale[1])):
        raise BadRow(where, field, f"{value} is outside the rating scale {scale_text(scale)}", "out of range")
    return rating
