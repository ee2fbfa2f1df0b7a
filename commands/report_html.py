"""report.html: one self-contained page (plots embedded as PNG, numbers as tables and as JSON)."""

from __future__ import annotations

import base64
import functools
import json
import math
from typing import Any

from alma.core import report_data
from alma.commands.report_plots import PLOTS

TEMPLATE = "report.html.j2"  # in alma/templates/; autoescaped, so no text reaches the page unescaped


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(head: list[str], rows: list[list[Any]], cls: str) -> dict[str, Any]:
    return {"head": head, "rows": [[_fmt(v) for v in row] for row in rows], "cls": cls}


def _round_rows(rounds: list[dict]) -> list[list[Any]]:
    rows = []
    for r in rounds:
        curve = r["best_of_n"]["expected_best"]
        rows.append([r["round"], r["prompts"], r["responses"], r["unscored"], r["all"]["mean"], r["all"]["sem"],
                     r["best"]["mean"], r["best"]["sem"], r["best"]["mean"] - r["all"]["mean"],
                     curve[-1] if curve else None])
    return rows


def _eval_row(m: dict) -> list[Any]:
    def ci(v):
        return f"[{_fmt(v[0])}, {_fmt(v[1])}]" if v else None

    vi, vp = m["vs_initial"] or {}, m["vs_previous"] or {}
    return [m["round"], m["model"], m["mean_score"], ci(m["mean_score_ci"]), vi.get("rate"), ci(vi.get("ci")),
            f"{vi['wins']}-{vi['losses']}-{vi['ties']}" if vi else None, vp.get("rate"), ci(vp.get("ci"))]


def _sanitize(value: Any) -> Any:
    """JSON without NaN (not valid JSON): NaN and infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    return value


def render_html(data: dict[str, Any], plots: dict[str, bytes], facts: list[tuple[str, str]]) -> str:
    rounds, stages = data["rounds"], data["stages"]
    tables = {
        "scores.png": _table(["round", "prompts", "responses", "unscored", "mean (all)", "s.e. (all)",
                              "mean (chosen)", "s.e. (chosen)", "gain", "E[best of N]"],
                             _round_rows(rounds), "rounds"),
        "best_of_n.png": _table(["round", *[f"n={n}" for n in _curve_columns(rounds)]],
                                [[r["round"], *[_curve_at(r, n) for n in _curve_columns(rounds)]] for r in rounds],
                                "best-of-n"),
        "checkpoints.png": _table(["round", "checkpoint", "responses", "response share", "wins", "win share",
                                   "mean score"],
                                  [[r["round"], name, c["responses"], c["response_share"], c["wins"], c["win_share"],
                                    c["mean_score"]] for r in rounds for name, c in r["checkpoints"].items()],
                                  "checkpoints"),
        "diversity.png": _table(["round", *[f"{k} ({side})" for k in report_data.DIVERSITY_KEYS
                                            for side in ("drawn", "random")]],
                                [[r["round"], *[r["diversity"][side][k] for k in report_data.DIVERSITY_KEYS
                                                for side in ("draw", "random")]] for r in rounds if r["diversity"]],
                                "diversity"),
        "model_eval.png": _table(["round", "model", "mean score", "95% CI", "win vs initial", "95% CI", "W-L-T",
                                  "win vs previous", "95% CI"],
                                 [_eval_row(m) for m in (data.get("eval") or {}).get("models", [])], "model-eval"),
        "stage_timings.png": _table(["stage", "rows", "seconds", "rows/s", "tokens", "tokens/s", "tokens of"],
                                    [[s["label"], s["rows"], s["seconds"], s["rows_per_s"],
                                      data["throughput"].get(s["label"], {}).get("tokens"),
                                      data["throughput"].get(s["label"], {}).get("tokens_per_s"),
                                      data["throughput"].get(s["label"], {}).get("tokens_of")] for s in stages],
                                    "stages"),
    }
    sections = [{"id": name[:-4], "title": title, "text": text, "image": base64.b64encode(plots[name]).decode(),
                 "table": tables.get(name)} for name, (title, text) in PLOTS.items() if name in plots]
    # "</" cannot end the script element early once escaped; the JSON is otherwise as json.dumps writes it.
    payload = json.dumps(_sanitize(data), sort_keys=True).replace("</", "<\\/")
    return _template().render(facts=facts, sections=sections, payload=payload)


@functools.lru_cache(maxsize=1)
def _template():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("alma", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template(TEMPLATE)


def _curve_columns(rounds: list[dict]) -> list[int]:
    """The n shown in the best-of-N table: 1, 2, 4, ... and the largest."""
    top = max((r["best_of_n"]["n"][-1] for r in rounds if r["best_of_n"]["n"]), default=0)
    ns = [n for n in (2 ** k for k in range(20)) if n < top]
    return ns + [top] if top else []


def _curve_at(r: dict, n: int) -> float | None:
    curve = r["best_of_n"]
    return curve["expected_best"][n - 1] if n <= len(curve["expected_best"]) else None
