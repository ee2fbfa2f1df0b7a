"""`alma data FILE`: what a data file holds and what it maps to (layouts, fields, scores, a few mapped
examples, and the rows that would be dropped). Layouts and the mapping rules: core/seed_formats.py,
docs/seed-data.md."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from alma.core.errors import ConfigError
from alma.core.seed_formats import SCALES, SCORE_MAX, SCORE_MIN, SeedRules, scale_text
from alma.core.seeds import file_format, read_judge, read_sft

KINDS = {"sft": "SFT", "judge": "judge", "eval": "eval prompt"}  # --kind -> what its rows are called
SAMPLES = 2  # mapped examples shown
LAYOUT_NAMES = {
    "messages": "messages (role/content)", "conversations": "ShareGPT conversations (from/value)",
    "alpaca": "Alpaca instruction/input/output", "prompt/completion": "prompt/completion",
    "prompt/response": "prompt/response", "score": "prompt/response/score",
    "helpsteer": "HelpSteer ratings", "ultrafeedback": "UltraFeedback completions",
    "ultrafeedback-flat": "UltraFeedback ratings, flattened", "ratings": "ratings",
}




def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _sample(kind: str, example: Any, limit: int) -> dict[str, Any]:
    if kind == "sft":
        return {"prompt": [{"role": m["role"], "content": _short(m["content"], limit)} for m in example.prompt],
                "response": _short(example.response, limit)}
    return {"prompt": _short(example.prompt, limit), "response": _short(example.response, limit),
            "score": example.score}


def describe(path: Path, kind: str, rules: SeedRules, limit: int = 200) -> dict[str, Any]:
    """What a file holds (format, rows, layouts, fields) and what it maps to (examples, judge scores, drops)."""
    if kind == "eval":
        return _describe_eval(path, limit)
    seeds = read_sft(path, rules) if kind == "sft" else read_judge(path, rules)
    info: dict[str, Any] = {
        "path": str(path), "kind": kind, "format": seeds.file_format, "rows": seeds.rows,
        "layouts": dict(seeds.layouts.most_common()), "fields": dict(sorted(seeds.fields.items())),
        "examples": len(seeds.examples)}
    if kind == "sft":
        info["ignored_fields"] = dict(sorted(seeds.ignored.items()))
    else:
        scores = Counter(e.score for e in seeds.examples)
        info["scores"] = {str(s): scores.get(s, 0) for s in range(SCORE_MIN, SCORE_MAX + 1)}
        rated = [layout for layout in seeds.layouts if layout != "score"]
        if rated:
            info["ratings"] = {"attributes": list(rules.judge_attributes),
                               "scales": {layout: list(rules.judge_scale or SCALES[layout]) for layout in rated}}
    if rules.drop_invalid:
        info["dropped"] = {"rows": len(seeds.rejects), "by_reason": dict(seeds.drops().most_common())}
    info["samples"] = [_sample(kind, e, limit) for e in seeds.examples[:SAMPLES]]
    return info


def _describe_eval(path: Path, limit: int) -> dict[str, Any]:
    from alma.core.eval_prompts import load_eval_rows  # the eval prompt layouts (MT-Bench, AlpacaEval, prompt)
    from alma.core.seeds import _rows

    rows = load_eval_rows(path)
    fields: Counter = Counter()
    for _, row in _rows(path):
        fields.update(str(k) for k in row)
    categories = Counter(r.category or "(none)" for r in rows)
    layouts = Counter(getattr(r, "layout", "prompt") for r in rows)
    return {"path": str(path), "kind": "eval", "format": file_format(path), "rows": len(rows),
            "layouts": dict(layouts.most_common()), "fields": dict(sorted(fields.items())),
            "examples": len(rows), "categories": dict(categories.most_common()),
            "references": sum(r.reference is not None for r in rows),
            "samples": [{"line": r.line, "prompt": _short(r.prompt, limit), "category": r.category,
                         "reference": None if r.reference is None else _short(r.reference, limit)}
                        for r in rows[:SAMPLES]]}


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {n}" for key, n in counts.items()) or "-"


def format_info(info: dict[str, Any]) -> str:
    """`alma data` for a terminal: one line per fact, examples cut to one line each."""
    kind = info["kind"]
    lines = [f"{info['path']} ({info['format']}): {info['rows']} {KINDS[kind]} rows"]
    lines.append("  layouts   " + _counts({LAYOUT_NAMES.get(k, k): n for k, n in info["layouts"].items()}))
    if "ratings" in info:
        scales = ", ".join(f"{scale_text(scale)} ({layout})" for layout, scale in info["ratings"]["scales"].items())
        lines.append(f"  ratings   mean of {', '.join(info['ratings']['attributes'])} on {scales}, stretched onto "
                     "0..10 and rounded half up")
    lines.append("  fields    " + _counts(info["fields"]))
    if kind == "sft":
        lines.append("  ignored   " + _counts(info["ignored_fields"]))
        lines.append(f"  maps to   {info['examples']} SFT examples (earlier turns are the prompt, the last "
                     "assistant turn the answer trained on)")
    elif kind == "judge":
        lines.append(f"  maps to   {info['examples']} judge triplets, scores:")
        top = max(info["scores"].values()) or 1
        lines.extend(f"  {score:>7}  {'#' * round(30 * n / top):<30} {n}" for score, n in info["scores"].items())
    else:
        lines.append(f"  maps to   {info['examples']} prompts, {info['references']} with a reference answer")
        lines.append("  category  " + _counts(info["categories"]))
    if "dropped" in info:
        drops = info["dropped"]
        reasons = ", ".join(f"{key}: {n}" for key, n in drops["by_reason"].items())
        lines.append(f"  dropped   {drops['rows']}" + (f" ({reasons})" if reasons else ""))
    for sample in info["samples"]:
        if kind == "sft":
            turns = " | ".join(f"[{m['role']}] {m['content']}" for m in sample["prompt"])
            lines.append(f"  example   {turns} -> {sample['response']}")
        elif kind == "judge":
            lines.append(f"  example   score {sample['score']}: {sample['prompt']} -> {sample['response']}")
        else:
            lines.append(f"  example   line {sample['line']} [{sample['category'] or '-'}]: {sample['prompt']}")
    return "\n".join(lines)


def data_main(path: str, kind: str, rules: SeedRules, as_json: bool) -> int:
    if kind == "eval" and rules.drop_invalid:
        raise ConfigError("--drop-invalid applies to seed files (--kind sft or judge); an eval prompt file is "
                          "read whole or refused")
    if as_json:
        print(json.dumps(describe(Path(path), kind, rules), indent=2, ensure_ascii=False))
    else:
        print(format_info(describe(Path(path), kind, rules, limit=72)))
    return 0
