"""Load and validate the two seed sets (SFT examples and judge triplets) from JSONL or Parquet.

Users already hold chat data in one of three layouts, so all three are accepted for SFT rows:
OpenAI-style `messages` (role/content), ShareGPT-style `conversations` (from/value), or flat
`prompt`/`response`. Every row is checked on load; the first bad row raises InputError naming the file,
the line (1-based; the row number for Parquet) and the field, so that nothing half-valid reaches training.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from alma.core.errors import InputError

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant"}
CHAT_ROLES = {"system", "user", "assistant"}
SCORE_MIN, SCORE_MAX = 0, 10


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


def bundled(name: str) -> Path:
    """Path of a file shipped in alma/seeds (the default seed sets, rubric, eval prompts)."""
    return Path(str(resources.files("alma").joinpath("seeds", name)))


def file_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line, row) from a JSONL or Parquet file, raising InputError for unreadable content."""
    p = str(path)
    if not path.is_file():
        raise InputError(p, None, None, "file not found")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise InputError(p, None, None, f"not a readable Parquet file ({e})") from None
        yield from enumerate(rows, start=1)
        return
    if path.suffix not in (".jsonl", ".json", ".ndjson"):
        raise InputError(p, None, None, "unsupported file type (use .jsonl or .parquet)")
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise InputError(p, line, None, "not valid UTF-8 text") from None
    for number, text in enumerate(raw.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(p, number, None, f"invalid JSON ({e.msg} at column {e.colno})") from None


def _text(row: dict[str, Any], key: str, where: tuple[str, int]) -> str:
    if key not in row:
        raise InputError(where[0], where[1], key, "missing")
    value = row[key]
    if not isinstance(value, str):
        raise InputError(where[0], where[1], key, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise InputError(where[0], where[1], key, "empty")
    return value


def _turns(row: dict[str, Any], key: str, role_key: str, text_key: str, roles: dict[str, str],
           where: tuple[str, int]) -> list[dict[str, str]]:
    turns = row[key]
    if not isinstance(turns, list) or not turns:
        raise InputError(where[0], where[1], key, "expected a non-empty list of turns")
    out = []
    for i, turn in enumerate(turns):
        field = f"{key}[{i}]"
        if not isinstance(turn, dict):
            raise InputError(where[0], where[1], field, "expected an object")
        role = turn.get(role_key)
        if role not in roles:
            raise InputError(where[0], where[1], f"{field}.{role_key}",
                             f"unknown role {role!r} (expected one of {sorted(roles)})")
        out.append({"role": roles[role], "content": _text(turn, text_key, (where[0], where[1]))})
    return out


def _sft_row(row: Any, where: tuple[str, int]) -> SftExample:
    if not isinstance(row, dict):
        raise InputError(where[0], where[1], None, "expected a JSON object")
    layouts = [key for key in ("messages", "conversations", "prompt", "response") if key in row]
    if len(layouts) > 1 and layouts[:2] != ["prompt", "response"]:
        raise InputError(where[0], where[1], layouts[1],
                         f"the row also has '{layouts[0]}': use one layout per row (messages, conversations "
                         "or prompt+response)")
    if "messages" in row:
        turns = _turns(row, "messages", "role", "content", {r: r for r in CHAT_ROLES}, where)
        key = "messages"
    elif "conversations" in row:
        turns = _turns(row, "conversations", "from", "value", SHAREGPT_ROLES, where)
        key = "conversations"
    elif "prompt" in row or "response" in row:
        return SftExample([{"role": "user", "content": _text(row, "prompt", where)}], _text(row, "response", where))
    else:
        raise InputError(where[0], where[1], None, "expected 'messages', 'conversations' or 'prompt'+'response'")
    if turns[-1]["role"] != "assistant":
        raise InputError(where[0], where[1], key, "the last turn must be the assistant's answer")
    if not any(t["role"] == "user" for t in turns[:-1]):
        raise InputError(where[0], where[1], key, "no user turn before the answer")
    return SftExample(turns[:-1], turns[-1]["content"])


def _judge_row(row: Any, where: tuple[str, int]) -> JudgeExample:
    if not isinstance(row, dict):
        raise InputError(where[0], where[1], None, "expected a JSON object")
    extra = sorted(set(row) - {"prompt", "response", "score"})
    if extra:
        raise InputError(where[0], where[1], extra[0], "unknown field (expected prompt, response, score)")
    prompt, response = _text(row, "prompt", where), _text(row, "response", where)
    if "score" not in row:
        raise InputError(where[0], where[1], "score", "missing")
    score = row["score"]
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise InputError(where[0], where[1], "score", f"expected a number 0..10, got {score!r}")
    if score != int(score):
        raise InputError(where[0], where[1], "score", f"expected a whole number 0..10, got {score}")
    if not SCORE_MIN <= score <= SCORE_MAX:
        raise InputError(where[0], where[1], "score", f"{score} is outside 0..10")
    return JudgeExample(prompt, response, int(score))


def _load(path: Path, parse) -> list:
    return list(_lines(path, parse))


def _freeze(ex: SftExample) -> tuple:
    return tuple((m["role"], m["content"]) for m in ex.prompt), ex.response


def load_sft(path: str | Path) -> list[SftExample]:
    """Validated SFT seed examples (duplicates rejected: they would silently reweight training)."""
    rows = _load(Path(path), lambda r, w: _FrozenSft(_sft_row(r, w)))
    return [r.example for r in rows]


def load_judge(path: str | Path) -> list[JudgeExample]:
    """Validated judge triplets (prompt, response, integer score 0..10)."""
    return _load(Path(path), _judge_row)


def _prompt_row(row: Any, where: tuple[str, int]) -> str:
    if not isinstance(row, dict):
        raise InputError(where[0], where[1], None, "expected a JSON object")
    extra = sorted(set(row) - {"prompt"})
    if extra:
        raise InputError(where[0], where[1], extra[0], "unknown field (expected prompt)")
    return _text(row, "prompt", where)


def load_prompts(path: str | Path) -> list[tuple[int, str]]:
    """Validated evaluation prompts, rows {"prompt": "..."}, as (line, prompt); duplicates rejected."""
    return [(line, prompt) for prompt, line in _lines(Path(path), _prompt_row).items()]


def _lines(path: Path, parse) -> dict:
    """Each parsed row with its line, in file order; a repeated row raises InputError."""
    seen: dict = {}
    for line, row in _rows(path):
        item = parse(row, (str(path), line))
        if item in seen:
            raise InputError(str(path), line, None, f"duplicate of line {seen[item]}")
        seen[item] = line
    if not seen:
        raise InputError(str(path), None, None, "no rows")
    return seen


@dataclass(frozen=True)
class _FrozenSft:
    """Hashable wrapper so duplicate SFT rows are found in one pass."""

    example: SftExample

    def __hash__(self) -> int:
        return hash(_freeze(self.example))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _FrozenSft) and _freeze(self.example) == _freeze(other.example)
