"""The numbers of a run's report, from what its rounds stored: per-round score statistics, the best-of-N
curve, score histograms, which checkpoint won, prompt diversity and stage timings. Pure: numpy and plain
rows in, JSON-able dicts out (commands/report.py reads the run folder and draws them).

The best-of-N curve is exact, not simulated: for a prompt whose N stored scores sorted ascending are
x_1 <= ... <= x_N, the expected best of n responses drawn without replacement from those N is

    E[max of n] = sum_{i=n..N} x_i * C(i-1, n-1) / C(N, n),

the probability that x_i is the largest of the n being C(i-1, n-1) / C(N, n) (the other n-1 come from the
i-1 below it). Averaged over all C(N, n) subsets, it is the U-statistic of the max kernel: an unbiased
estimate of the expected best of n fresh samples from the round's checkpoint mix, for every n <= N,
with no sampling noise of its own. The curve averages it over the round's prompts.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCORE_MIN, SCORE_MAX = 0.0, 10.0
HISTOGRAM_BINS = 20  # half-point bins over 0..10
DIVERSITY_KEYS = ("clusters_covered", "distinct_1", "distinct_2", "mean_cosine_distance")


@dataclass
class RoundInput:
    """One round as stored: every judged response and the best-of-N rows (prompt_id, checkpoint, score)."""

    round: int
    scores: list[dict[str, Any]]
    best: list[dict[str, Any]]
    diversity: dict[str, dict[str, float]] = field(default_factory=dict)  # the draw's manifest report
    split: dict[str, int] = field(default_factory=dict)  # responses per prompt per checkpoint


def _finite(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def describe(values: Sequence[float]) -> dict[str, float | int]:
    """count, mean, standard deviation (n-1), standard error, median, min, max; NaN where undefined."""
    x = np.asarray(_finite(values), dtype=np.float64)
    if x.size == 0:
        return {"count": 0, "mean": math.nan, "std": math.nan, "sem": math.nan, "median": math.nan,
                "min": math.nan, "max": math.nan}
    std = float(x.std(ddof=1)) if x.size > 1 else math.nan
    return {"count": int(x.size), "mean": float(x.mean()), "std": std,
            "sem": std / math.sqrt(x.size) if x.size > 1 else math.nan, "median": float(np.median(x)),
            "min": float(x.min()), "max": float(x.max())}


def _log_comb_table(m: int) -> np.ndarray:
    """log k! for k = 0..m."""
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, m + 1, dtype=np.float64)))])


def best_of_n_weights(m: int) -> np.ndarray:
    """W[n-1, i-1] = P(the i-th smallest of m scores is the max of a random n-subset) = C(i-1,n-1)/C(m,n)."""
    lf = _log_comb_table(m)
    n = np.arange(1, m + 1)[:, None]
    i = np.arange(1, m + 1)[None, :]
    valid = i >= n
    k = np.where(valid, i - 1, 0)
    j = np.where(valid, n - 1, 0)
    log_w = (lf[k] - lf[j] - lf[k - j]) - (lf[m] - lf[n] - lf[m - n])
    return np.where(valid, np.exp(log_w), 0.0)


def expected_best(scores: Sequence[float]) -> np.ndarray:
    """E[max of n] for n = 1..len(scores), drawing n of `scores` without replacement (exact)."""
    x = np.sort(np.asarray(scores, dtype=np.float64))
    return best_of_n_weights(len(x)) @ x if len(x) else np.zeros(0)


def best_of_n_curve(groups: Mapping[str, Sequence[float]]) -> dict[str, list]:
    """The mean over prompts of E[max of n], n = 1..the most scores any prompt has; a prompt counts toward
    the n it has at least n scores for (unscored responses, NaN, are left out). `prompts[n-1]` says how many."""
    by_size: dict[int, list[np.ndarray]] = defaultdict(list)
    for values in groups.values():
        x = _finite(values)
        if x:
            by_size[len(x)].append(np.sort(np.asarray(x)))
    if not by_size:
        return {"n": [], "expected_best": [], "prompts": []}
    top = max(by_size)
    total, count = np.zeros(top), np.zeros(top, dtype=np.int64)
    for m, rows in by_size.items():
        curves = np.stack(rows) @ best_of_n_weights(m).T  # prompts x n
        total[:m] += curves.sum(0)
        count[:m] += len(rows)
    return {"n": list(range(1, top + 1)), "expected_best": (total / count).tolist(), "prompts": count.tolist()}


def histogram(values: Sequence[float], bins: int = HISTOGRAM_BINS) -> dict[str, list]:
    """Counts of finite values in `bins` equal bins over the judge's 0..10 scale (10 falls in the last)."""
    counts, edges = np.histogram(_finite(values), bins=bins, range=(SCORE_MIN, SCORE_MAX))
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def checkpoint_contribution(scores: Sequence[Mapping], best: Sequence[Mapping]) -> dict[str, dict[str, Any]]:
    """Per checkpoint: responses, mean score, best-of-N wins, and its share of the responses and of the wins
    (a checkpoint that wins more than its share of responses writes better answers than the others)."""
    responses = Counter(str(s["checkpoint"]) for s in scores)
    wins = Counter(str(b["checkpoint"]) for b in best)
    by_checkpoint: dict[str, list[float]] = defaultdict(list)
    for s in scores:
        by_checkpoint[str(s["checkpoint"])].append(s["score"])
    out = {}
    for name in sorted(set(responses) | set(wins)):
        out[name] = {"responses": responses[name], "mean_score": describe(by_checkpoint[name])["mean"],
                     "wins": wins[name],
                     "response_share": responses[name] / max(1, sum(responses.values())),
                     "win_share": wins[name] / max(1, sum(wins.values()))}
    return out


def round_report(data: RoundInput) -> dict[str, Any]:
    """Everything the report shows of one round."""
    groups: dict[str, list[float]] = defaultdict(list)
    for s in data.scores:
        groups[str(s["prompt_id"])].append(s["score"])
    scores = [s["score"] for s in data.scores]
    best = [b["score"] for b in data.best]
    return {
        "round": data.round,
        "prompts": len(groups),
        "responses": len(data.scores),
        "unscored": len(data.scores) - len(_finite(scores)),
        "all": describe(scores),
        "best": describe(best),
        "histogram_all": histogram(scores),
        "histogram_best": histogram(best),
        "best_of_n": best_of_n_curve(groups),
        "checkpoints": checkpoint_contribution(data.scores, data.best),
        "split": dict(data.split),
        "diversity": {side: {k: data.diversity.get(side, {}).get(k) for k in DIVERSITY_KEYS}
                      for side in ("draw", "random")} if data.diversity else {},
    }


# An idle stretch longer than this between stages (a run stopped and resumed the next day) is drawn this long.
TIMELINE_GAP_S = 60.0


def stage_timings(stages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stages (label, seconds, rows, committed_at, ...) in commit order, with rows per second and `start_s`,
    where the stage starts on the run's timeline (`timeline`)."""
    out = []
    for s in sorted(stages, key=lambda s: s.get("committed_at") or 0):
        seconds, rows = float(s.get("seconds") or 0), s.get("rows")
        out.append({**s, "rows_per_s": rows / seconds if rows is not None and seconds > 0 else None})
    for s, start in zip(out, timeline(out)):
        s["start_s"] = start
    return out


def timeline(stages: Sequence[Mapping[str, Any]], max_gap_s: float = TIMELINE_GAP_S) -> list[float]:
    """Each stage's start (commit time minus its seconds) in seconds from the earliest start, with every
    idle stretch (no stage running) longer than `max_gap_s` shortened to it: overlapping stages (step 0's
    trainings) show as overlapping bars, and a resumed run's pause does not squeeze the rest. A stage
    without a commit time (an old manifest) starts where the one before it in the list ended."""
    begins = {i: float(s["committed_at"]) - float(s.get("seconds") or 0)
              for i, s in enumerate(stages) if s.get("committed_at")}
    placed: dict[int, float] = {}
    shift, covered, origin = 0.0, None, None  # idle seconds cut so far; latest end so far; earliest start
    for i in sorted(begins, key=begins.get):
        begin, seconds = begins[i], float(stages[i].get("seconds") or 0)
        origin = begin if origin is None else origin
        if covered is not None and begin - covered > max_gap_s:
            shift += begin - covered - max_gap_s
        placed[i] = begin - origin - shift
        covered = begin + seconds if covered is None else max(covered, begin + seconds)
    starts: list[float] = []
    for i, s in enumerate(stages):
        if i not in placed:
            placed[i] = starts[-1] + float(stages[i - 1].get("seconds") or 0) if starts else 0.0
        starts.append(placed[i])
    return starts


TIMING_GROUPS = {"train": "train", "pool": "generate", "pool-embeddings": "generate", "responses": "generate",
                 "scores": "judge", "distill-labels": "judge"}


def timing_group(kind: str) -> str:
    """train, generate, judge or other: how the timing plot colours a stage of this kind (its manifest's)."""
    return TIMING_GROUPS.get(kind, "other")


def throughput(stage: Mapping[str, Any], tokens: int | None, token_seconds: float | None = None) -> dict[str, Any]:
    """rows/s over the stage's wall time; tokens/s over `token_seconds` (a training's own time, without
    Ray Train's start-up) or the stage's wall time."""
    seconds, rows = float(stage.get("seconds") or 0), stage.get("rows")
    per = token_seconds if token_seconds else seconds
    return {"seconds": seconds, "rows": rows,
            "rows_per_s": rows / seconds if rows is not None and seconds > 0 else None,
            "tokens": tokens, "tokens_per_s": tokens / per if tokens is not None and per > 0 else None}


def _comparison(c: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not c:
        return None
    return {k: c.get(k) for k in ("rate", "ci", "wins", "losses", "ties", "unscored", "prompts")}


def eval_summary(model_eval: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The per-round numbers of `alma eval`'s JSON (eval/model_eval.json) that the report shows: mean score
    and its interval, and the win rates against the initial model and the previous round; None without one."""
    if not model_eval or not model_eval.get("models"):
        return None
    models = sorted(model_eval["models"], key=lambda m: m["round"])
    judge = model_eval.get("judge") or {}
    return {"training": model_eval.get("training"), "baseline": model_eval.get("baseline"),
            "prompts": len(model_eval.get("prompts") or []), "judge": judge.get("checkpoint") or judge.get("url"),
            "models": [{"model": m["model"], "round": m["round"], "mean_score": m.get("mean_score"),
                        "mean_score_ci": m.get("mean_score_ci"), "vs_initial": _comparison(m.get("vs_initial")),
                        "vs_previous": _comparison(m.get("vs_previous"))} for m in models]}


def report(rounds: Sequence[RoundInput], stages: Sequence[Mapping[str, Any]],
           summary: Mapping[str, Any] | None = None, model_eval: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole report's numbers (what report.html embeds as JSON)."""
    return {"rounds": [round_report(r) for r in sorted(rounds, key=lambda r: r.round)],
            "stages": stage_timings(stages),
            "throughput": dict((summary or {}).get("throughput") or {}),
            "wall_seconds": (summary or {}).get("wall_seconds"),
            "eval": eval_summary(model_eval)}
