"""The report's plots (matplotlib, Agg backend: no display needed), each a PNG from the report's data."""

from __future__ import annotations

import io
import math
from typing import Any

from alma.core import report_data

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
                          "Every committed stage on the run's timeline, in the order they started: a bar from its "
                          "start to its commit, so stages that ran at once (step 0's trainings, where the cluster "
                          "had room) overlap. Idle stretches between stages (a run stopped and resumed) are "
                          "shortened to a minute."),
}



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
    # Bars on the run's timeline (report_data.timeline): stages that ran at once overlap.
    ax.barh(range(len(stages)), [s["seconds"] for s in stages], left=[s.get("start_s", 0.0) for s in stages],
            color=[colours[k] for k in kinds])
    ax.set_yticks(range(len(stages)), labels, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds since the first stage started (idle stretches over "
                  f"{report_data.TIMELINE_GAP_S:.0f} s drawn as {report_data.TIMELINE_GAP_S:.0f} s)")
    for kind, colour in colours.items():
        if kind in kinds:
            ax.barh([0], [0], color=colour, label=kind)
    ax.legend(fontsize="small", loc="upper right")  # the first rows (base model, judge split) are short
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
