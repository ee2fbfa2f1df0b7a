"""The yardsticks of `alma eval` that do not depend on the run's judge, and the check of selection itself.

- Instruction following (core.ifeval): every model answers the instruction-following prompts; rules grade
  each answer. Per model: the strict compliance rate at prompt level (every constraint met) and at
  constraint level, each constraint family's rate, and the paired win rate against the initial SFT model
  and the previous round's model on the per-prompt share of constraints met (ties half).
- Best-of-N against a random pick: with N >= 2 answers per prompt, the answer the run's judge scored
  highest against a seeded random other answer of the same prompt, graded by the rules (instruction
  prompts) and by each second-opinion judge (held-out prompts); and per round of the run, the response
  its best-of-N stage chose against a random other response of the same drawn prompt, graded by each
  second opinion. No training stands between the pick and the grade: this measures the selection step.

A prompt's value is the mean over its answers; intervals are percentile bootstraps over prompts
(core.eval_metrics). Plain aggregation over lists, apart from reading a round's Parquet tables.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from alma.config import AlmaConfig
from alma.core.eval_metrics import (best_and_other, bootstrap_ci, bootstrap_ratio_ci, format_interval, format_number,
                                     mean, outcomes, win_rate)
from alma.core.ifeval import FAMILIES, IfevalPrompt
from alma.core.manifest import read_manifest

RUN_JUDGE = "run judge"
IFEVAL = "ifeval"
NO_SECOND_OPINION = ("no second opinion was given (--second-judge, --chat-judge-url): the rounds' best-of-N "
                     "picks were not graded by a judge other than the one that picked them")


def compare(a: Sequence[float], b: Sequence[float], cfg: AlmaConfig) -> dict[str, Any]:
    """A against B prompt by prompt: the win rate (ties half), its counts and its bootstrap interval."""
    return {**asdict(win_rate(a, b)),
            "ci": list(bootstrap_ci(outcomes(a, b), cfg.eval.bootstrap, cfg.eval.confidence, cfg.seed))}


# ---- instruction following ------------------------------------------------------------------------------

def constraint_share(met: Sequence[bool]) -> float:
    return sum(met) / len(met)


def ifeval_summary(cfg: AlmaConfig, models: list[str], prompts: list[IfevalPrompt],
                   graded: dict[str, list[list[list[bool]]]]) -> list[dict[str, Any]]:
    """One row per model (round 0 the initial SFT model); `graded[model][prompt][sample]` holds whether the
    answer met each of the prompt's constraints."""
    b, level, seed = cfg.eval.bootstrap, cfg.eval.confidence, cfg.seed
    share = {name: [mean([constraint_share(m) for m in samples]) for samples in graded[name]] for name in models}
    rows = []
    for k, name in enumerate(models):
        strict = [mean([float(all(m)) for m in samples]) for samples in graded[name]]
        met = [float(sum(sum(m) for m in samples)) for samples in graded[name]]
        checked = [float(sum(len(m) for m in samples)) for samples in graded[name]]
        families = {}
        for family in FAMILIES:
            num, den = [], []
            for prompt, samples in zip(prompts, graded[name]):
                idx = [i for i, c in enumerate(prompt.constraints) if c.family == family]
                if idx:
                    num.append(float(sum(m[i] for m in samples for i in idx)))
                    den.append(float(len(idx) * len(samples)))
            if den:
                families[family] = {"constraints": int(sum(den)), "met": int(sum(num)), "rate": sum(num) / sum(den),
                                    "ci": list(bootstrap_ratio_ci(num, den, b, level, seed))}
        previous = models[k - 1] if k else None
        rows.append({
            "model": name, "round": k,
            "prompt_level": mean(strict), "prompt_level_ci": list(bootstrap_ci(strict, b, level, seed)),
            "constraint_level": sum(met) / sum(checked) if sum(checked) else math.nan,
            "constraint_level_ci": list(bootstrap_ratio_ci(met, checked, b, level, seed)),
            "mean_share": mean(share[name]),
            "vs_initial": compare(share[name], share[models[0]], cfg) if k else None,
            "previous": previous,
            "vs_previous": compare(share[name], share[previous], cfg) if k else None,
            "by_family": families,
        })
    return rows


# ---- best-of-N against a random pick -------------------------------------------------------------------

def _versus(cfg: AlmaConfig, best: list[float], other: list[float]) -> dict[str, Any]:
    return {"prompts": len(best), "best": mean(best), "random": mean(other), "vs_random": compare(best, other, cfg)}


def picks(scores: Sequence[Sequence[float]], keys: Sequence[str], seed: int) -> list[tuple[int, int, int] | None]:
    """Per prompt, (prompt index, best sample, random other sample) by the judge's scores of its answers."""
    out = []
    for i, (row, key) in enumerate(zip(scores, keys)):
        pair = best_and_other(list(row), f"{seed}:{key}")
        out.append(None if pair is None else (i, *pair))
    return out


def best_vs_random_eval(cfg: AlmaConfig, models: list[str], *, ifeval_keys: list[str],
                        ifeval_scores: dict[str, list[list[float]]] | None,
                        ifeval_graded: dict[str, list[list[list[bool]]]] | None,
                        keys: list[str], scores: dict[str, list[list[float]]],
                        second: dict[str, dict[str, list[list[float]]]]) -> dict[str, Any]:
    """Per model, the run's judge's best answer of each prompt against a random other answer, graded by the
    rules (`ifeval_*`: the run's judge's scores and the rules' verdicts of each answer) and by each second
    opinion (`second[judge][model][prompt][sample]`, on the held-out prompts `keys`)."""
    n = cfg.eval.responses_per_prompt
    if n < 2:
        return {"responses_per_prompt": n, "models": [],
                "note": "needs eval.responses_per_prompt >= 2 (a best and another answer per prompt)"}
    rows = []
    for k, name in enumerate(models):
        yardsticks: dict[str, Any] = {}
        held_out = [p for p in picks(scores[name], keys, cfg.seed) if p]
        yardsticks[RUN_JUDGE] = _versus(cfg, [scores[name][i][b] for i, b, _ in held_out],
                                        [scores[name][i][o] for i, b, o in held_out])
        if ifeval_scores is not None and ifeval_graded is not None:
            chosen = [p for p in picks(ifeval_scores[name], ifeval_keys, cfg.seed) if p]
            grade = ifeval_graded[name]
            yardsticks[IFEVAL] = _versus(cfg, [constraint_share(grade[i][b]) for i, b, _ in chosen],
                                         [constraint_share(grade[i][o]) for i, _, o in chosen])
        for judge, by_model in second.items():
            got = by_model[name]
            yardsticks[judge] = _versus(cfg, [got[i][b] for i, b, _ in held_out], [got[i][o] for i, _, o in held_out])
        rows.append({"model": name, "round": k, "yardsticks": yardsticks})
    return {"responses_per_prompt": n, "selector": RUN_JUDGE, "models": rows, "note": None}


def round_picks(run: Path, cfg: AlmaConfig) -> list[dict[str, Any]]:
    """Per committed round, a seeded sample of its prompts (at most eval.selection_prompts_per_round), each
    with the response its best-of-N stage chose and a random other response, with the run judge's scores."""
    from alma.core.tables import read_table

    out = []
    for rd in sorted((run / "rounds").glob("[0-9]*")):
        if not rd.name.isdigit() or read_manifest(rd / "best") is None or read_manifest(rd / "scores") is None:
            continue
        r = int(rd.name)
        rows = read_table(rd / "scores").select(["prompt_id", "prompt", "checkpoint", "sample", "response",
                                                 "score"]).to_pylist()
        by_prompt: dict[str, list[dict]] = {}
        for row in rows:
            by_prompt.setdefault(row["prompt_id"], []).append(row)
        chosen = {b["prompt_id"]: (b["checkpoint"], b["sample"])
                  for b in read_table(rd / "best").select(["prompt_id", "checkpoint", "sample"]).to_pylist()}
        eligible = sorted(p for p in chosen if len(by_prompt.get(p, [])) >= 2)
        cap = cfg.eval.selection_prompts_per_round
        sample = sorted(random.Random(f"{cfg.seed}:{r}").sample(eligible, cap)) if cap and len(eligible) > cap \
            else eligible
        pairs = []
        for pid in sample:
            candidates = sorted(by_prompt[pid], key=lambda row: (row["checkpoint"], row["sample"]))
            best = next(row for row in candidates if (row["checkpoint"], row["sample"]) == chosen[pid])
            other = random.Random(f"best-vs-random:{cfg.seed}:{r}:{pid}").choice(
                [row for row in candidates if row is not best])
            pairs.append({"prompt_id": pid, "prompt": best["prompt"], "best": best, "random": other})
        out.append({"round": r, "prompts": len(by_prompt), "eligible": len(eligible), "pairs": pairs})
    return out


def round_pairs(rounds: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (prompt, response) pairs a second opinion grades for the rounds: each pick's best and random."""
    return [(p["prompt"], p[side]["response"]) for rd in rounds for p in rd["pairs"] for side in ("best", "random")]


def best_vs_random_rounds(cfg: AlmaConfig, rounds: list[dict[str, Any]],
                          second: dict[str, dict[tuple[str, str], float]]) -> dict[str, Any]:
    """Per round: the run judge's own scores of its pick and of the random response (circular: it picked by
    them), and each second opinion's (`second[judge][(prompt, response)]`)."""
    rows = []
    for rd in rounds:
        pairs = rd["pairs"]
        yardsticks = {RUN_JUDGE: _versus(cfg, [p["best"]["score"] for p in pairs],
                                         [p["random"]["score"] for p in pairs])}
        for judge, score_of in second.items():
            yardsticks[judge] = _versus(cfg, [score_of[p["prompt"], p["best"]["response"]] for p in pairs],
                                        [score_of[p["prompt"], p["random"]["response"]] for p in pairs])
        rows.append({"round": rd["round"], "prompts": rd["prompts"], "graded_prompts": len(pairs),
                     "yardsticks": yardsticks,
                     "picks": [{"prompt_id": p["prompt_id"],
                                **{f"{side}_{k}": p[side][k] for side in ("best", "random")
                                   for k in ("checkpoint", "sample")}} for p in pairs]})
    note = None if second else NO_SECOND_OPINION
    if not rounds:
        note = "the run has no round with committed scores and best-of-N yet"
    return {"prompts_per_round": cfg.eval.selection_prompts_per_round, "rounds": rows, "note": note}


# ---- tables ---------------------------------------------------------------------------------------------

def format_ifeval_table(rows: list[dict[str, Any]], confidence: float) -> str:
    level = f"{confidence:.0%} CI"
    head = (f"{'model':<10} {'round':>5} {'prompt-level':>12} {level:>16} {'constraint-level':>16} {level:>16} "
            f"{'win vs initial':>14} {level:>16}")
    lines = [head, "-" * len(head)]
    for row in rows:
        cmp = row["vs_initial"]
        lines.append(f"{row['model']:<10} {row['round']:>5} {format_number(row['prompt_level']):>12} "
                     f"{format_interval(row['prompt_level_ci']):>16} {format_number(row['constraint_level']):>16} "
                     f"{format_interval(row['constraint_level_ci']):>16} "
                     f"{'-' if cmp is None else format_number(cmp['rate']):>14} {format_interval(cmp and cmp['ci']):>16}")
    families = [f for f in FAMILIES if any(f in row["by_family"] for row in rows)]
    lines.append("constraint-level by family: " + "; ".join(
        f"{family} ({rows[0]['by_family'][family]['constraints']})"
        + "".join(f" {format_number(row['by_family'][family]['rate'])}" for row in rows) for family in families))
    return "\n".join(lines)


def format_versus_table(rows: list[tuple[str, str, dict[str, Any]]], confidence: float) -> str:
    """Rows (who, yardstick, numbers): prompts, mean of the best picks and of the random ones, win rate."""
    level = f"{confidence:.0%} CI"
    head = (f"{'':<10} {'yardstick':<28} {'prompts':>7} {'best':>8} {'random':>8} {'win best vs random':>18} "
            f"{level:>16}")
    lines = [head, "-" * len(head)]
    for who, yardstick, v in rows:
        lines.append(f"{who:<10} {yardstick[:28]:<28} {v['prompts']:>7} {format_number(v['best']):>8} "
                     f"{format_number(v['random']):>8} {format_number(v['vs_random']['rate']):>18} "
                     f"{format_interval(v['vs_random']['ci']):>16}")
    return "\n".join(lines)


def format_best_vs_random(section: dict[str, Any], confidence: float) -> str:
    ev, rounds = section["eval"], section["rounds"]
    out = [f"best-of-N vs random pick, eval answers (N = {ev['responses_per_prompt']}; best = the run judge's "
           f"pick; '{RUN_JUDGE}' is circular, shown for scale):"]
    if ev["models"]:
        out.append(format_versus_table([(m["model"], name, v) for m in ev["models"]
                                        for name, v in m["yardsticks"].items()], confidence))
    if ev.get("note"):
        out.append(f"  {ev['note']}")
    out.append("best-of-N vs random pick, the run's rounds (the response each round trained on vs a random other):")
    if rounds["rounds"]:
        out.append(format_versus_table([(f"round {r['round']}", name, v) for r in rounds["rounds"]
                                        for name, v in r["yardsticks"].items()], confidence))
    if rounds.get("note"):
        out.append(f"  {rounds['note']}")
    return "\n".join(out)
