"""Held-out prompt files in the shapes users already have, for `alma eval` (JSONL or Parquet, one row each).

Three layouts, told apart by their key field; a row holding two of them is refused:
- MT-Bench `question.jsonl`: `question_id`, `category`, `turns` (the user's turns), optional `reference`
  (one reference answer per turn). Only turn 1 is evaluated: the judges rate one request and one answer,
  and a turn-2 answer would be judged on top of each model's own turn-1 answer, so two models would be
  compared on different conversations. The later turns are kept in `extra["later_turns"]`.
- AlpacaEval: `instruction`, `dataset` (the category), and optionally `output` and `generator` (a reference
  model's answer and its name), kept in `extra`. A non-empty `input` (Alpaca's training layout) is
  appended to the instruction after a blank line.
- `{"prompt": ...}`, with optional `category`, `reference` (a reference answer) and `id`.

Every other field of a row is kept in `extra` as it is; a null field counts as absent. A bad row raises InputError naming the file, the
line (the row number for Parquet) and the field; the same prompt twice in a file (after case, space and
punctuation normalisation) is refused, since it would count twice.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alma.core.errors import InputError
from alma.core.prompts import prompt_id
from alma.core.seeds import _text, read_unique

LAYOUTS = {"turns": "mt-bench", "instruction": "alpaca-eval", "prompt": "prompt"}


@dataclass(frozen=True)
class EvalRow:
    """One held-out prompt as read from a file: what is asked, and what the file says about it."""

    line: int
    prompt: str
    category: str | None = None
    reference: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    layout: str = "prompt"  # mt-bench, alpaca-eval or prompt


def load_eval_rows(path: str | Path) -> list[EvalRow]:
    """The validated rows of one eval prompt file, in file order; a prompt asked twice is refused."""
    return read_unique(path, _eval_row, lambda row: [(None, prompt_id(row.prompt))])


def _eval_row(row: Any, where: tuple[str, int]) -> EvalRow:
    if not isinstance(row, dict):
        raise InputError(where[0], where[1], None, "expected a JSON object")
    # A null field is an absent one: a Parquet table stores a field some rows lack as null in those rows.
    row = {key: value for key, value in row.items() if value is not None}
    keys = [key for key in LAYOUTS if key in row]
    if not keys:
        raise InputError(where[0], where[1], None, "expected 'prompt', 'instruction' (AlpacaEval) or 'turns' "
                         "(MT-Bench)")
    if len(keys) > 1:
        raise InputError(where[0], where[1], keys[1], f"the row also has '{keys[0]}': use one layout per row")
    layout = LAYOUTS[keys[0]]
    if layout == "mt-bench":
        return _mt_bench(row, where)
    if layout == "alpaca-eval":
        return _alpaca_eval(row, where)
    return EvalRow(where[1], _text(row, "prompt", where), _optional_text(row, "category", where),
                   _reference(row, where), _extra(row, {"prompt", "category", "reference"}, where), layout)


def _mt_bench(row: dict[str, Any], where: tuple[str, int]) -> EvalRow:
    turns = row["turns"]
    if not isinstance(turns, list) or not turns:
        raise InputError(where[0], where[1], "turns", "expected a non-empty list of user turns")
    for i, turn in enumerate(turns):
        if not isinstance(turn, str):
            raise InputError(where[0], where[1], f"turns[{i}]", f"expected a string, got {type(turn).__name__}")
        if not turn.strip():
            raise InputError(where[0], where[1], f"turns[{i}]", "empty")
    _id(row, "question_id", where)
    reference = None
    if row.get("reference") is not None:
        answers = row["reference"]
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise InputError(where[0], where[1], "reference", "expected a list of strings (one per turn)")
        reference = answers[0] if answers and answers[0].strip() else None
    extra = _extra(row, {"turns", "category", "reference"}, where)
    if len(turns) > 1:
        extra["later_turns"] = turns[1:]
    return EvalRow(where[1], turns[0], _optional_text(row, "category", where), reference, extra, "mt-bench")


def _alpaca_eval(row: dict[str, Any], where: tuple[str, int]) -> EvalRow:
    prompt = _text(row, "instruction", where)
    extra_input = _optional_text(row, "input", where, allow_empty=True)
    if extra_input and extra_input.strip():
        prompt = f"{prompt}\n\n{extra_input}"
    for key in ("output", "generator"):
        _optional_text(row, key, where, allow_empty=True)
    return EvalRow(where[1], prompt, _optional_text(row, "dataset", where), None,
                   _extra(row, {"instruction", "input", "dataset"}, where), "alpaca-eval")


def _optional_text(row: dict[str, Any], key: str, where: tuple[str, int], allow_empty: bool = False) -> str | None:
    """A string field that may be absent or null; present, it must be a string (non-empty unless allowed)."""
    if row.get(key) is None:
        return None
    if not isinstance(row[key], str):
        raise InputError(where[0], where[1], key, f"expected a string, got {type(row[key]).__name__}")
    return row[key] if allow_empty else _text(row, key, where)


def _reference(row: dict[str, Any], where: tuple[str, int]) -> str | None:
    value = row.get("reference")
    if isinstance(value, list):  # an MT-Bench-style list in a prompt row: its first answer
        if not all(isinstance(a, str) for a in value):
            raise InputError(where[0], where[1], "reference", "expected a string or a list of strings")
        return value[0] if value and value[0].strip() else None
    return _optional_text(row, "reference", where, allow_empty=True) or None


def _id(row: dict[str, Any], key: str, where: tuple[str, int]) -> None:
    value = row.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, str))):
        raise InputError(where[0], where[1], key, f"expected an integer or a string, got {type(value).__name__}")


def _extra(row: dict[str, Any], mapped: set[str], where: tuple[str, int]) -> dict[str, Any]:
    """The row's other fields as they are, made JSON-able (a Parquet row may hold dates or bytes)."""
    _id(row, "id", where)
    return {key: _plain(value) for key, value in row.items() if key not in mapped}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
