"""Verifiable instruction following: prompts whose constraints a rule can check, and the rules.

A yardstick that does not depend on any judge: a prompt says, besides its task, how the answer must look
("at most 40 words", "no commas", "end with the phrase ..."), and each constraint is checked by a rule
written here. The prompts and the rules are this project's own. Checks are strict: the answer as the model
wrote it, with no cleaning (no loose variant that strips markdown or first/last lines); leading and
trailing whitespace is ignored, and letters are compared case-insensitively where the rule says so.

What the rules count:
- a word is a run of letters or digits, with inner apostrophes or hyphens ("don't", "well-known"); a number
  with a decimal point or thousands comma ("3.5", "1,000") is one word;
- a sentence ends at ".", "!" or "?" (and any closing quote or bracket) followed by a space or the end,
  or at a line break; a piece counts when it holds a word (so "e.g. " ends one: keep counts loose);
- a paragraph is a block of text between blank lines;
- a bullet is a line starting with "-", "*" or "•" and a space;
- a keyword matches as a whole word or phrase, in any case.

A constraint is one JSON object, {"kind": ..., its arguments}; `KINDS` lists each kind's family, arguments
and rule. Pure: no Ray, no torch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alma.core.errors import InputError

RELATIONS = ("at_least", "at_most", "exactly")
WORD = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+(?:['’-][^\W_]+)*")
SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)|\n")
BULLET = re.compile(r"^[ \t]*[-*•][ \t]+\S", re.MULTILINE)
PLACEHOLDER = re.compile(r"\[[^\[\]\n]*[^\[\]\s][^\[\]\n]*\]")
TITLE = re.compile(r"<<[^<>\n]*[^<>\s][^<>\n]*>>")
FENCE = re.compile(r"^```[A-Za-z]*\n(.*)\n```$", re.DOTALL)


@dataclass(frozen=True)
class Constraint:
    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return KINDS[self.kind].family

    def check(self, answer: str) -> bool:
        return KINDS[self.kind].rule(answer.strip(), **self.args)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.args}


@dataclass(frozen=True)
class IfevalPrompt:
    id: str
    prompt: str
    constraints: tuple[Constraint, ...]
    line: int = 0


def words(text: str) -> list[str]:
    return WORD.findall(text)


def sentences(text: str) -> list[str]:
    return [piece for piece in SENTENCE_END.split(text) if WORD.search(piece)]


def paragraphs(text: str) -> list[str]:
    return [block.strip() for block in re.split(r"\n\s*\n", text) if block.strip()]


def _compare(count: int, relation: str, value: int) -> bool:
    if relation == "at_least":
        return count >= value
    if relation == "at_most":
        return count <= value
    return count == value


def _occurrences(text: str, phrase: str) -> int:
    pattern = r"\s+".join(re.escape(part) for part in phrase.split())
    return len(re.findall(rf"(?<!\w){pattern}(?!\w)", text, re.IGNORECASE))


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def _starts(text: str, phrase: str) -> bool:
    """The answer opens with the phrase, any case and spacing, and the phrase is not half a word ("Yes"
    does not open "Yesterday")."""
    t, p = _squash(text), _squash(phrase)
    return t.startswith(p) and (len(t) == len(p) or not (p[-1].isalnum() and t[len(p)].isalnum()))


def _ends(text: str, phrase: str) -> bool:
    t, p = _squash(text), _squash(phrase)
    return t.endswith(p) and (len(t) == len(p) or not (p[0].isalnum() and t[-len(p) - 1].isalnum()))


def _is_json(text: str) -> bool:
    fenced = FENCE.match(text)  # one ```json fence around it is how models mark JSON; nothing else may surround it
    try:
        json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return False
    return True


def _postscript(text: str, marker: str) -> bool:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        rest = line.strip()
        if rest.startswith(marker) and rest[len(marker):].strip() and any(WORD.search(t) for t in lines[:i]):
            return True
    return False


def _quoted(text: str) -> bool:
    return len(text) >= 2 and (text[0], text[-1]) in {('"', '"'), ("“", "”")}


def _sections(text: str, marker: str) -> int:
    return len(re.findall(rf"^[ \t#*]*{re.escape(marker)}[ \t]+\d+\b", text, re.MULTILINE | re.IGNORECASE))


@dataclass(frozen=True)
class Kind:
    family: str
    args: dict[str, str]  # name -> "count" (int >= 0), "relation", "text" (non-empty), "texts" (non-empty list)
    rule: Callable[..., bool]
    describe: str


KINDS: dict[str, Kind] = {
    "words": Kind("length", {"relation": "relation", "value": "count"},
                  lambda t, relation, value: _compare(len(words(t)), relation, value),
                  "the answer has {relation} {value} words"),
    "sentences": Kind("length", {"relation": "relation", "value": "count"},
                      lambda t, relation, value: _compare(len(sentences(t)), relation, value),
                      "the answer has {relation} {value} sentences"),
    "paragraphs": Kind("structure", {"relation": "relation", "value": "count"},
                       lambda t, relation, value: _compare(len(paragraphs(t)), relation, value),
                       "the answer has {relation} {value} paragraphs (blocks between blank lines)"),
    "bullets": Kind("structure", {"relation": "relation", "value": "count"},
                    lambda t, relation, value: _compare(len(BULLET.findall(t)), relation, value),
                    "the answer has {relation} {value} bullet lines ('- ', '* ' or '• ')"),
    "sections": Kind("structure", {"marker": "text", "relation": "relation", "value": "count"},
                     lambda t, marker, relation, value: _compare(_sections(t, marker), relation, value),
                     "the answer has {relation} {value} lines starting '{marker} <number>'"),
    "placeholders": Kind("structure", {"relation": "relation", "value": "count"},
                         lambda t, relation, value: _compare(len(PLACEHOLDER.findall(t)), relation, value),
                         "the answer has {relation} {value} placeholders in square brackets"),
    "postscript": Kind("structure", {"marker": "text"}, lambda t, marker: _postscript(t, marker),
                       "a line after the body starts with '{marker}' and says something"),
    "title": Kind("format", {}, lambda t: TITLE.search(t) is not None,
                  "the answer holds a title in <<double angle brackets>>"),
    "json": Kind("format", {}, _is_json, "the whole answer is valid JSON (one ``` fence allowed)"),
    "quoted": Kind("format", {}, _quoted, "the whole answer is wrapped in double quotation marks"),
    "include_keywords": Kind("keywords", {"keywords": "texts"},
                             lambda t, keywords: all(_occurrences(t, k) for k in keywords),
                             "the answer uses each of {keywords}"),
    "forbidden_words": Kind("keywords", {"words": "texts"},
                            lambda t, words: not any(_occurrences(t, w) for w in words),
                            "the answer uses none of {words}"),
    "keyword_frequency": Kind("keywords", {"keyword": "text", "relation": "relation", "value": "count"},
                              lambda t, keyword, relation, value: _compare(_occurrences(t, keyword), relation, value),
                              "the answer uses '{keyword}' {relation} {value} times"),
    "lowercase": Kind("case", {}, lambda t: t == t.lower() and any(c.isalpha() for c in t),
                      "no capital letter anywhere"),
    "uppercase": Kind("case", {}, lambda t: t == t.upper() and any(c.isalpha() for c in t),
                      "every letter is a capital"),
    "no_commas": Kind("punctuation", {}, lambda t: "," not in t and "，" not in t, "no comma anywhere"),
    "starts_with": Kind("start_end", {"phrase": "text"},
                        _starts,
                        "the answer starts with '{phrase}' (any case)"),
    "ends_with": Kind("start_end", {"phrase": "text"},
                      _ends,
                      "the answer ends with '{phrase}' (any case), nothing after it"),
}
FAMILIES = tuple(dict.fromkeys(kind.family for kind in KINDS.values()))


def parse_constraint(raw: Any, where: tuple[str, int], field_name: str = "constraints") -> Constraint:
    """A constraint object checked against its kind's arguments; InputError names the field."""
    path, line = where
    if not isinstance(raw, dict):
        raise InputError(path, line, field_name, "expected an object {\"kind\": ..., its arguments}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise InputError(path, line, f"{field_name}.kind", f"unknown kind {kind!r} (expected one of "
                         f"{', '.join(KINDS)})")
    spec = KINDS[kind].args
    extra = sorted(set(raw) - {"kind"} - set(spec))
    if extra:
        raise InputError(path, line, f"{field_name}.{extra[0]}", f"not an argument of '{kind}' (its arguments: "
                         f"{', '.join(spec) or 'none'})")
    args = {}
    for name, type_ in spec.items():
        where_arg = f"{field_name}.{name}"
        if name not in raw:
            raise InputError(path, line, where_arg, "missing")
        value = raw[name]
        if type_ == "count" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InputError(path, line, where_arg, f"expected a whole number >= 0, got {value!r}")
        if type_ == "relation" and value not in RELATIONS:
            raise InputError(path, line, where_arg, f"expected one of {', '.join(RELATIONS)}, got {value!r}")
        if type_ == "text" and (not isinstance(value, str) or not value.strip()):
            raise InputError(path, line, where_arg, "expected a non-empty string")
        if type_ == "texts":
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
                raise InputError(path, line, where_arg, "expected a non-empty list of non-empty strings")
            value = tuple(value)
        args[name] = value
    return Constraint(kind, args)


def conflict(constraints: Sequence[Constraint]) -> str | None:
    """Why no answer can meet these constraints together, for the combinations a prompt writer can get wrong."""
    kinds = {c.kind: c for c in constraints}
    if {"lowercase", "uppercase"} <= kinds.keys():
        return "lowercase and uppercase"
    marker = kinds["postscript"].args["marker"] if "postscript" in kinds else ""
    for case, keeps in (("lowercase", str.lower), ("uppercase", str.upper)):
        if case in kinds and keeps(marker) != marker:
            return f"{case} and the postscript marker {marker!r}"
    shaped = sorted(kinds.keys() & {"title", "bullets", "postscript", "quoted", "sections", "paragraphs"})
    if "json" in kinds and shaped:
        return f"json and {shaped[0]}"
    if "quoted" in kinds and kinds.keys() & {"starts_with", "ends_with"}:
        return "quoted and a start or end phrase (the quotation marks come first and last)"
    low, high = 0, None
    for c in constraints:
        if c.kind == "words" and c.args["relation"] in ("at_least", "exactly"):
            low = max(low, c.args["value"])
        if c.kind == "words" and c.args["relation"] in ("at_most", "exactly"):
            high = c.args["value"] if high is None else min(high, c.args["value"])
    if high is not None and low > high:
        return f"at least {low} and at most {high} words"
    return None


def parse_prompt(row: Any, where: tuple[str, int]) -> IfevalPrompt:
    """One prompt row {"id", "prompt", "constraints": [1..3 objects]}."""
    path, line = where
    if not isinstance(row, dict):
        raise InputError(path, line, None, "expected a JSON object")
    extra = sorted(set(row) - {"id", "prompt", "constraints"})
    if extra:
        raise InputError(path, line, extra[0], "unknown field (expected id, prompt, constraints)")
    for key in ("id", "prompt"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise InputError(path, line, key, "expected a non-empty string")
    raw = row.get("constraints")
    if not isinstance(raw, list) or not raw:
        raise InputError(path, line, "constraints", "expected a non-empty list of constraints")
    constraints = tuple(parse_constraint(c, where, f"constraints[{i}]") for i, c in enumerate(raw))
    why = conflict(constraints)
    if why:
        raise InputError(path, line, "constraints", f"cannot all be met: {why}")
    return IfevalPrompt(row["id"], row["prompt"], constraints, line)


def load_ifeval_prompts(path: str | Path) -> list[IfevalPrompt]:
    """Validated prompts of an instruction-following file (JSONL or Parquet); ids and prompts are unique."""
    from alma.core.seeds import read_unique

    return read_unique(path, parse_prompt, lambda prompt: [("id", prompt.id), ("prompt", prompt.prompt)])


def grade(prompt: IfevalPrompt, answer: str) -> list[bool]:
    """Whether the answer meets each of the prompt's constraints, in order."""
    return [c.check(answer) for c in prompt.constraints]


def describe(constraint: Constraint) -> str:
    """The rule in words, e.g. "the answer has at_most 40 words"."""
    args = {k: (", ".join(repr(x) for x in v) if isinstance(v, tuple) else v) for k, v in constraint.args.items()}
    return KINDS[constraint.kind].describe.format(**args)
