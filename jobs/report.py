"""`alma report RUN`: report.html (one self-contained file: plots embedded as PNG, numbers as tables and as
JSON) and the same plots as PNG files in report/, from the run folder alone. The run ends by writing it.

Also the run's throughput (rows/s and tokens/s per stage) that the driver records in summary.json: tokens
are counted with the run's tokenizer on what each stage produced or read (generated responses, judged
pairs, embedded prompts; TRL's own count for trainings), on an even sample of at most TOKEN_SAMPLE rows
per stage scaled to all of them, so a large run's summary costs seconds.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from alma.core import report_data
from alma.core.console import say
from alma.core.errors import RunStateError
from alma.core.manifest import read_manifest
from alma.core.progress import format_duration
from alma.core.run_layout import RunLayout
from alma.jobs.status import committed_stages
from alma.jobs.streaming import data_files

log = logging.getLogger("alma")

TOKEN_SAMPLE = 2000
PLOTS = {  # file -> (section title, what it shows)
    "scores.png": ("Judge score per round: chosen vs all responses",
                   "Mean judge score (0..10) of every response and of the best-of-N response chosen per prompt; "
                   "bars are 95% confidence intervals of the mean (1.96 standard errors)."),
    "score_distributions.png": ("Score distributions per round",
                                "Histogram of the judge scores of all responses and of the chosen ones, "
                                "in half-point bins."),
    "best_of_n.png": ("Best-of-N curve",
                      "Expected best judge score among n responses drawn from a prompt's N stored ones, averaged "
                      "over the round's prompts: exact (order statistics over all n-subsets), no resampling."),
    "checkpoints.png": ("Checkpoint contribution",
                        "Which checkpoint wrote the chosen responses (share of best-of-N wins) next to its share "
                        "of the responses, and its mean score; 'latest' is the previous round's model."),
    "diversity.png": ("Prompt diversity per round",
                      "The round's drawn prompts (solid) against the mean of random draws of the same size from "
                      "the same unused prompts (dashed)."),
    "model_eval.png": ("Held-out evaluation per round (alma eval)",
                       "Every round's model and the initial SFT model (round 0) answering held-out prompts that no "
                       "stage drew from, scored by the judge: mean score (left) and win rate against the initial "
                       "model and against the previous round, ties counting half (right; 0.5 is no difference). "
                       "Bars are bootstrap confidence intervals over the prompts. Written by `alma eval`."),
    "stage_timings.png": ("Stage timings",
                          "Wall seconds of every committed stage, in the order they were committed."),
}


def _scores_table(folder: Path, columns: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for f in data_files(folder):
        rows += pq.read_table(f, columns=columns).to_pylist()
    return rows


def load_rounds(run_dir: Path) -> list[report_data.RoundInput]:
    """Every round whose scores are committed, with its best-of-N rows and its draw's diversity report."""
    rounds = []
    for rd in RunLayout(run_dir).rounds():
        if read_manifest(rd.scores) is None:
            continue
        best = read_manifest(rd.best)
        draw = read_manifest(rd.draw)
        responses = read_manifest(rd.responses)
        rounds.append(report_data.RoundInput(
            round=rd.number,
            scores=_scores_table(rd.scores, ["prompt_id", "checkpoint", "score"]),
            best=_scores_table(rd.best, ["prompt_id", "checkpoint", "score"]) if best else [],
            diversity=(draw.info.get("diversity") or {}) if draw else {},
            split=(responses.info.get("split") or {}) if responses else {}))
    return rounds


# ---- throughput (summary.json) ------------------------------------------------------------------------

def _tokenizer(run_dir: Path):
    """The run's tokenizer (every checkpoint has the base model's), or None when none is committed yet."""
    from tokenizers import Tokenizer

    for path in sorted(RunLayout(run_dir).checkpoints.glob("*/tokenizer.json")):
        return Tokenizer.from_file(str(path))
    return None


def _token_source(run_dir: Path, folder: str, kind: str) -> tuple[str, list[Path], list[str]] | None:
    """What a stage's tokens are (generated, judged, embedded), where they are and in which columns."""
    layout, path = RunLayout(run_dir), run_dir / folder
    if kind == "pool":
        return "generated", data_files(layout.pool_raw), ["response"]
    if kind == "pool-embeddings":
        return "embedded", [layout.pool_file], ["prompt"]
    if kind == "responses":
        return "generated", data_files(path), ["response"]
    if kind in ("scores", "distill-labels"):
        return "judged", data_files(path), ["prompt", "response"]
    return None


def count_tokens(tokenizer, files: list[Path], columns: list[str], sample: int = TOKEN_SAMPLE) -> int:
    """Tokens in `columns` of the Parquet `files`: exact up to `sample` rows, else an even sample scaled up."""
    table = pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
    rows = table.num_rows
    if rows == 0:
        return 0
    step = max(1, math.ceil(rows / sample))
    picked = table.take(list(range(0, rows, step)))
    texts = [str(v) for c in columns for v in picked[c].to_pylist() if v is not None]
    counted = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
    return round(counted * rows / picked.num_rows)


def run_throughput(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Per committed stage: seconds, rows, rows/s, and where it has them tokens, tokens/s and what tokens."""
    run_dir = Path(run_dir)
    tokenizer = _tokenizer(run_dir)
    out = {}
    for stage in committed_stages(run_dir):
        info, tokens, of, seconds = stage["info"], None, None, None
        if stage["kind"] == "train" and info.get("last_num_tokens") is not None:
            # TRL's count of the tokens it trained on, over its own time (without Ray Train's start-up)
            tokens, of, seconds = int(info["last_num_tokens"]), "trained", info.get("seconds")
        elif tokenizer is not None:
            source = _token_source(run_dir, stage["folder"], stage["kind"])
            if source is not None and source[1]:
                try:
                    tokens, of = count_tokens(tokenizer, source[1], source[2]), source[0]
                except (OSError, KeyError, pa.ArrowException) as e:  # a layout this version does not know
                    log.warning("tokens of %s not counted: %s", stage["label"], e)
        entry = report_data.throughput(stage, tokens, seconds)
        if of is not None:
            entry["tokens_of"] = of
        if seconds:
            entry["train_seconds"] = seconds
        out[stage["label"]] = entry
    return out


# ---- plots --------------------------------------------------------------------------------------------

def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _nan(v: Any) -> float:
    return math.nan if v is None else float(v)


def _plot_scores(rounds: list[dict]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    x = [r["round"] for r in rounds]
    for key, name, marker in (("all", "all responses", "o"), ("best", "chosen (best of N)", "s")):
        means = [_nan(r[key]["mean"]) for r in rounds]
        ci = [1.96 * _nan(r[key]["sem"]) if math.isfinite(_nan(r[key]["sem"])) else 0.0 for r in rounds]
        ax.errorbar(x, means, yerr=ci, marker=marker, capsize=4, label=name)
    ax.set(xlabel="round", ylabel="mean judge score", xticks=x)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _grid(count: int, width: float = 3.2, height: float = 2.6):
    import matplotlib.pyplot as plt

    cols = min(count, 4)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    return fig, list(axes.flat[:count])


def _plot_distributions(rounds: list[dict]):
    fig, axes = _grid(len(rounds))
    for ax, r in zip(axes, rounds):
        edges = r["histogram_all"]["edges"]
        width = edges[1] - edges[0]
        ax.bar(edges[:-1], r["histogram_all"]["counts"], width=width, align="edge", alpha=0.6, label="all")
        ax.bar(edges[:-1], r["histogram_best"]["counts"], width=width, align="edge", alpha=0.8, label="chosen")
        ax.set(title=f"round {r['round']}", xlabel="judge score", xlim=(report_data.SCORE_MIN, report_data.SCORE_MAX))
        ax.set_ylabel("responses")
    axes[0].legend()
    fig.tight_layout()
    return fig


def _plot_best_of_n(rounds: list[dict]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    largest = 1
    for r in rounds:
        curve = r["best_of_n"]
        if curve["n"]:
            ax.plot(curve["n"], curve["expected_best"], marker="o" if len(curve["n"]) <= 16 else None,
                    label=f"round {r['round']}")
            largest = max(largest, curve["n"][-1])
    if largest > 16:
        ax.set_xscale("log")
    ax.set(xlabel="N (responses per prompt)", ylabel="expected best judge score")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _plot_checkpoints(rounds: list[dict]):
    import matplotlib.pyplot as plt

    names = sorted({name for r in rounds for name in r["checkpoints"]})
    colours = {name: f"C{k}" for k, name in enumerate(names)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    x = [r["round"] for r in rounds]
    for key, offset, alpha in (("response_share", -0.2, 0.4), ("win_share", 0.2, 1.0)):
        bottom = [0.0] * len(rounds)
        for name in names:
            share = [r["checkpoints"].get(name, {}).get(key, 0.0) for r in rounds]
            left.bar([xi + offset for xi in x], share, width=0.38, bottom=bottom, color=colours[name], alpha=alpha,
                     label=name if key == "win_share" else None)
            bottom = [b + v for b, v in zip(bottom, share)]
    left.set(xlabel="round", ylabel="share", xticks=x, ylim=(0, 1.3),
             title="share of responses (pale) and of best-of-N wins")
    left.legend(fontsize="small", loc="upper center", ncol=max(1, len(names)))
    width = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        means = [_nan(r["checkpoints"].get(name, {}).get("mean_score")) for r in rounds]
        right.bar([xi - 0.4 + width * (k + 0.5) for xi in x], means, width=width, color=colours[name], label=name)
    right.set(xlabel="round", ylabel="mean judge score", xticks=x, title="mean score per checkpoint")
    fig.tight_layout()
    return fig


def _plot_diversity(rounds: list[dict]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(report_data.DIVERSITY_KEYS), figsize=(13, 3.0))
    with_div = [r for r in rounds if r["diversity"]]
    x = [r["round"] for r in with_div]
    for ax, key in zip(axes, report_data.DIVERSITY_KEYS):
        for side, style in (("draw", "-"), ("random", "--")):
            ax.plot(x, [_nan(r["diversity"][side][key]) for r in with_div], linestyle=style, marker="o",
                    label="drawn" if side == "draw" else "random draws")
        ax.set(title=key.replace("_", " "), xlabel="round", xticks=x)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def _interval(values: list[dict | None], key: str, ci_key: str) -> tuple[list[float], list[list[float]]]:
    """Points and asymmetric error bars ([below], [above]) from dicts holding a value and its interval."""
    points, below, above = [], [], []
    for v in values:
        value = _nan((v or {}).get(key))
        ci = (v or {}).get(ci_key) or [value, value]
        points.append(value)
        below.append(max(0.0, value - _nan(ci[0])) if math.isfinite(value) else 0.0)
        above.append(max(0.0, _nan(ci[1]) - value) if math.isfinite(value) else 0.0)
    return points, [below, above]


def _plot_model_eval(ev: dict):
    import matplotlib.pyplot as plt

    models = ev["models"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    x = [m["round"] for m in models]
    y, err = _interval(models, "mean_score", "mean_score_ci")
    left.errorbar(x, y, yerr=err, marker="o", capsize=4)
    left.set(xlabel="round (0: initial SFT model)", ylabel="mean judge score", xticks=x,
             title=f"{ev['prompts']} held-out prompts")
    left.grid(alpha=0.3)
    later = [m for m in models if m["vs_initial"]]
    for key, name, shift in (("vs_initial", "vs initial", -0.06), ("vs_previous", "vs previous round", 0.06)):
        y, err = _interval([m[key] for m in later], "rate", "ci")
        right.errorbar([m["round"] + shift for m in later], y, yerr=err, marker="o", capsize=4, label=name)
    right.axhline(0.5, color="gray", linestyle="--", linewidth=1)
    right.set(xlabel="round", ylabel="win rate", ylim=(0, 1), xticks=[m["round"] for m in later],
              title=f"training: {ev['training'] or '-'}")
    right.grid(alpha=0.3)
    right.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _plot_stages(stages: list[dict]):
    import matplotlib.pyplot as plt

    colours = {"train": "tab:blue", "generate": "tab:green", "judge": "tab:orange", "other": "tab:gray"}
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(stages) + 1.2))
    labels = [s["label"] for s in stages]
    kinds = [report_data.timing_group(s.get("kind", "")) for s in stages]
    ax.barh(range(len(stages)), [s["seconds"] for s in stages], color=[colours[k] for k in kinds])
    ax.set_yticks(range(len(stages)), labels, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    for kind, colour in colours.items():
        if kind in kinds:
            ax.barh([0], [0], color=colour, label=kind)
    ax.legend(fontsize="small", loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return fig


def render_plots(data: dict[str, Any]) -> dict[str, bytes]:
    """PNG bytes per file name, for the sections that have something to show."""
    import matplotlib

    matplotlib.use("Agg")
    rounds, stages = data["rounds"], data["stages"]
    plots: dict[str, bytes] = {}
    if rounds:
        plots["scores.png"] = _png(_plot_scores(rounds))
        plots["score_distributions.png"] = _png(_plot_distributions(rounds))
        plots["best_of_n.png"] = _png(_plot_best_of_n(rounds))
        plots["checkpoints.png"] = _png(_plot_checkpoints(rounds))
        if any(r["diversity"] for r in rounds):
            plots["diversity.png"] = _png(_plot_diversity(rounds))
    if data.get("eval"):
        plots["model_eval.png"] = _png(_plot_model_eval(data["eval"]))
    if stages:
        plots["stage_timings.png"] = _png(_plot_stages(stages))
    return plots


# ---- HTML ---------------------------------------------------------------------------------------------

def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _table(head: list[str], rows: list[list[Any]], cls: str) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>'


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
    sections = []
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
    for name, (title, text) in PLOTS.items():
        if name not in plots:
            continue
        image = base64.b64encode(plots[name]).decode()
        sections.append(f'<section id="{name[:-4]}"><h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>'
                        f'<img alt="{html.escape(title)}" src="data:image/png;base64,{image}">'
                        f"{tables.get(name, '')}</section>")
    if not sections:
        sections.append("<p>Nothing committed yet.</p>")
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
    payload = json.dumps(_sanitize(data), sort_keys=True).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>alma run report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }} dt {{ font-weight: 600; }}
img {{ max-width: 100%; display: block; margin: 0.5em 0; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }} th {{ background: #f3f3f3; }}
td:first-child {{ text-align: left; }}
</style></head>
<body><h1>alma run report</h1><dl>{dl}</dl>
{''.join(sections)}
<script type="application/json" id="alma-report-data">{payload}</script>
</body></html>
"""


def _curve_columns(rounds: list[dict]) -> list[int]:
    """The n shown in the best-of-N table: 1, 2, 4, ... and the largest."""
    top = max((r["best_of_n"]["n"][-1] for r in rounds if r["best_of_n"]["n"]), default=0)
    ns = [n for n in (2 ** k for k in range(20)) if n < top]
    return ns + [top] if top else []


def _curve_at(r: dict, n: int) -> float | None:
    curve = r["best_of_n"]
    return curve["expected_best"][n - 1] if n <= len(curve["expected_best"]) else None


def _facts(run_dir: Path, summary: dict | None, data: dict) -> list[tuple[str, str]]:
    try:
        config = yaml.safe_load(RunLayout(run_dir).config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    facts = [("run", str(run_dir)), ("name", str(config.get("name", "-"))),
             ("base model", str((config.get("model") or {}).get("base", "-"))),
             ("rounds", f"{len(data['rounds'])} with scores of {config.get('rounds', '?')}")]
    if summary:
        facts += [("wall time", format_duration(float(summary.get("wall_seconds") or 0))),
                  ("judge", str(summary.get("judge", "-"))), ("final checkpoint", str(summary.get("final_checkpoint")))]
    else:
        facts.append(("state", "no summary.json yet: the run has not finished (or was stopped)"))
    facts.append(("written", time.strftime("%Y-%m-%d %H:%M:%S")))
    return facts


def build_report_data(run_dir: Path) -> dict[str, Any]:
    summary = _summary(run_dir) or {}
    if "throughput" not in summary:  # a run still going (or stopped): measure what is committed so far
        summary = {**summary, "throughput": run_throughput(run_dir)}
    stages = [{k: v for k, v in s.items() if k != "info"} for s in committed_stages(run_dir)]
    return report_data.report(load_rounds(run_dir), stages, summary, _model_eval(run_dir))


def _model_eval(run_dir: Path) -> dict | None:
    """`alma eval`'s result for this run, when it has one (eval/model_eval.json)."""
    try:
        return json.loads(RunLayout(run_dir).model_eval.read_text())
    except (OSError, ValueError):
        return None


def _summary(run_dir: Path) -> dict | None:
    try:
        return json.loads(RunLayout(run_dir).summary.read_text())
    except (OSError, ValueError):
        return None


def write_report(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Write report.html and report/*.png into `out` (default: the run folder); returns their paths,
    report.html first."""
    run_dir = Path(run_dir)
    if not RunLayout(run_dir).config.is_file():
        raise RunStateError(f"{run_dir}: not a run folder (no config.yaml)")
    out = Path(out) if out is not None else run_dir
    data = build_report_data(run_dir)
    plots = render_plots(data)
    folder = RunLayout(out).report_dir
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in plots.items():
        (folder / name).write_bytes(png)
        paths.append(folder / name)
    page = RunLayout(out).report_html
    page.write_text(render_html(data, plots, _facts(run_dir, _summary(run_dir), data)), encoding="utf-8")
    return [page, *paths]


def finish_run_report(ctx) -> Path | None:
    """The run's last step: write the report and publish it beside the run. A report that cannot be drawn
    is said and logged, never a failed run: every stage is committed by then."""
    try:
        paths = write_report(ctx.run_dir)
        if ctx.remote is not None:
            for path in paths:
                ctx.remote.upload(path)
    except Exception as e:  # the report is a view of committed stages; `alma report RUN` retries it
        log.exception("report")
        say(f"report: not written ({type(e).__name__}: {e}); `alma report {ctx.run_dir}` retries")
        return None
    say(f"report: {paths[0]}" + (f" (and {ctx.location})" if ctx.remote is not None else ""))
    return paths[0]


def report_main(run_dir: str, out: str | None = None) -> int:
    paths = write_report(Path(run_dir), Path(out) if out else None)
    print(f"{paths[0]} ({len(paths) - 1} plots in {RunLayout(paths[0].parent).report_dir})")
    return 0
