"""`alma eval RUN`: does alignment improve round over round, by yardsticks the run's judge does not drive?

The initial SFT model (`eval.baseline`, sft-1) and every round's model (`checkpoints/round-<r>`) answer the
same held-out prompts (`eval.responses_per_prompt` answers each, decoded with `eval.sampling` or the run's
`round.sampling`, one sampling seed for every model). Graded by:
- the run's judge (the checkpoint that judged its rounds: `judge-distilled`, else `judge`), or a served
  stand-in for it (`--judge-url`): mean score, win rate against the initial SFT model and against the
  previous round's model, prompt by prompt, overall and per prompt category. Not independent: this judge
  chose the training data.
- rules (commands/eval_yardsticks.py, core/ifeval.py): the models also answer instruction-following prompts
  whose constraints are checked by rule; strict compliance and win rate against the initial SFT model.
- second opinions (commands/eval_judges.py): another judge checkpoint or served judge (`--second-judge`), an
  OpenAI-compatible chat endpoint (`--chat-judge-url`); each gets the run judge's table of its own.
- best-of-N against a random pick: the run judge's best answer against a random other one, and each
  round's chosen response against a random other, graded by the rules and the second opinions.
Every number comes with a percentile bootstrap interval over prompts (core.eval_metrics).

Held-out prompts: the bundled `alma/seeds/eval_prompts.jsonl` (24 prompts written for this project; no stage
of a run reads the file) and/or the user's files in MT-Bench, AlpacaEval or {"prompt"} shape
(core.eval_prompts). Each is checked against the run's drawn prompts and SFT seed prompts (after case, space
and punctuation normalisation) and any overlap is reported, since a model trained on a prompt is not being
evaluated on held-out data there.

Engines run in this process, one model at a time, with no Ray, as in `alma judge eval`. Tables are printed
and a JSON written (default `<run>/eval/model_eval.json`, atomically) with every answer, score and rule
verdict, so the numbers can be rechecked and a report can plot them (docs/evaluation.md lists its fields).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from alma.config import AlmaConfig, load_run_config
from alma.core.errors import ConfigError, InputError, RunStateError
from alma.core.eval_metrics import bootstrap_ci, format_interval, mean
from alma.core.eval_prompts import load_eval_rows
from alma.core.ifeval import IfevalPrompt, grade, load_ifeval_prompts
from alma.core.manifest import read_manifest, write_json_atomic
from alma.core.prompts import prompt_id
from alma.core.run_layout import RunLayout
from alma.core.seeds import bundled, load_sft
from alma.commands.eval_judges import (Judge, load_model, score_in_process, score_with_endpoint, second_opinions,
                                   served_models, timed)
from alma.commands.eval_yardsticks import (IFEVAL, best_vs_random_eval, best_vs_random_rounds, compare,
                                       format_best_vs_random, format_ifeval_table, ifeval_summary, round_pairs,
                                       round_picks)
from alma.core.console import say
from alma.commands.judge_eval import _json_safe

BUNDLED = "eval_prompts.jsonl"
IFEVAL_BUNDLED = "ifeval_prompts.jsonl"
JUDGES = ("judge-distilled", "judge")  # the run's judge: the distilled one when the run made it
UNCATEGORIZED = "uncategorized"
IFEVAL_INDEPENDENCE = "independent: rules written in this project, no model involved"


@dataclass(frozen=True)
class EvalPrompt:
    prompt_id: str
    prompt: str
    source: str  # "bundled" or the file it came from, with its line
    category: str | None = None
    reference: str | None = None  # a reference answer from the file; carried into the JSON, shown to no judge
    extra: dict[str, Any] = field(default_factory=dict)  # the row's other fields (ids, MT-Bench's later turns)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `alma eval`."""
    parser.add_argument("run", metavar="RUN", help="run folder (local) whose models are evaluated")
    parser.add_argument("--prompts", metavar="FILE", action="append", default=[],
                        help="held-out prompts on top of the bundled 24, JSONL or Parquet: MT-Bench question.jsonl "
                             "rows (turn 1 is evaluated), AlpacaEval rows, or {\"prompt\": ...} rows (repeatable)")
    parser.add_argument("--no-bundled", action="store_true", help="leave out the bundled prompts (needs --prompts)")
    parser.add_argument("--no-ifeval", action="store_true",
                        help="skip the instruction-following yardstick (rule-checked prompts; eval.ifeval)")
    parser.add_argument("--judge-url", metavar="URL",
                        help="score with a served judge (`alma judge serve`, POST /v1/rank) instead of the run's "
                             "in-process one, e.g. the run's judge served on the cluster")
    parser.add_argument("--token-file", metavar="FILE",
                        help="bearer token of --judge-url and of a served --second-judge (default: $ALMA_JUDGE_TOKEN)")
    parser.add_argument("--second-judge", metavar="DIR|URL", action="append", default=[],
                        help="a second-opinion judge with a table of its own: a judge checkpoint folder (scored "
                             "in this process with the run's judge settings) or a served judge's URL (repeatable)")
    parser.add_argument("--chat-judge-url", metavar="URL",
                        help="a second opinion from an OpenAI-compatible chat-completions endpoint (e.g. "
                             "http://host:8000/v1), asked the judge prompt and read for its [[N]]")
    parser.add_argument("--chat-judge-model", metavar="NAME", help="the model name sent to --chat-judge-url")
    parser.add_argument("--chat-judge-token-file", metavar="FILE",
                        help="bearer token of --chat-judge-url (default: $ALMA_CHAT_JUDGE_TOKEN; none if unset)")
    parser.add_argument("--out", metavar="FILE", help="where to write the results (default: <run>/eval/model_eval.json)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the run's config, e.g. --set eval.responses_per_prompt=4")


def load_eval_prompts(files: list[str], with_bundled: bool = True) -> list[EvalPrompt]:
    """The bundled prompts and the files' prompts, in order; a prompt given twice (after normalisation)
    is refused with the file and line of both."""
    sources = ([(bundled(BUNDLED), "bundled")] if with_bundled else []) + [(Path(f), None) for f in files]
    if not sources:
        raise ConfigError("--no-bundled leaves no prompts: give at least one --prompts FILE")
    out: list[EvalPrompt] = []
    seen: dict[str, str] = {}
    for path, label in sources:
        for row in load_eval_rows(path):
            key = prompt_id(row.prompt)
            where = f"{path}:{row.line}"
            if key in seen:
                raise InputError(str(path), row.line, "prompt", f"the same prompt as {seen[key]}")
            seen[key] = where
            out.append(EvalPrompt(key, row.prompt, label or where, row.category, row.reference, row.extra))
    return out


def run_models(run: Path, cfg: AlmaConfig) -> list[tuple[str, Path]]:
    """(name, checkpoint folder) of the initial SFT model, then of each committed round's model in order."""
    layout = RunLayout(run)
    folders = [(cfg.eval.baseline, layout.checkpoint(cfg.eval.baseline))]
    if read_manifest(folders[0][1]) is None:
        raise RunStateError(f"{run} has no committed {cfg.eval.baseline} checkpoint to evaluate against")
    for r in range(1, cfg.rounds + 1):
        folder = layout.checkpoint(f"round-{r}")
        if read_manifest(folder) is None:
            break
        folders.append((f"round-{r}", folder))
    return folders


def run_judge(run: Path) -> Path:
    for name in JUDGES:
        if read_manifest(RunLayout(run).checkpoint(name)) is not None:
            return RunLayout(run).checkpoint(name)
    raise RunStateError(f"{run} has no committed judge checkpoint; pass --judge-url of a served judge")


def primary_judge(args: argparse.Namespace, cfg: AlmaConfig, run: Path, token: str | None) -> Judge:
    """The judge of the main table and of best-of-N's pick: the run's, or the served one standing in for it."""
    if args.judge_url:
        url, model = args.judge_url, served_models(args.judge_url, token).get("id")
        return Judge("run judge", "served", lambda pairs, label: score_with_endpoint(url, token, pairs, label=label)[0],
                     {"url": url, "model": model})
    folder = run_judge(run)
    return Judge("run judge", "run-judge", lambda pairs, label: score_in_process(cfg, folder, pairs, label),
                 {"checkpoint": str(folder), "scoring": cfg.judge.scoring})


def contamination(run: Path, cfg: AlmaConfig, prompts: list[EvalPrompt]) -> dict[str, list[str]]:
    """Eval prompts the run trained on, by prompt id (a hash of the normalised text): drawn by a round, or a
    prompt of the SFT seed."""
    import pyarrow.parquet as pq

    drawn: set[str] = set()
    for rd in RunLayout(run).rounds():
        if read_manifest(rd.draw) is not None:
            drawn |= set(pq.read_table(rd.draw_file, columns=["prompt_id"])["prompt_id"].to_pylist())
    from alma.seedsets import seed_file as resolve_seed_file

    seed_file = resolve_seed_file(cfg.seed_sft, "sft")
    seeded = {prompt_id(e.user_prompt) for e in load_sft(seed_file)} if seed_file.is_file() else set()
    return {"in_draws": [p.prompt_id for p in prompts if p.prompt_id in drawn],
            "in_sft_seed": [p.prompt_id for p in prompts if p.prompt_id in seeded]}


def generate_answers(cfg: AlmaConfig, models: list[tuple[str, Path]], prompts: list[EvalPrompt],
                     ifeval_prompts: list[IfevalPrompt] = ()) -> tuple[dict[str, list[list[str]]],
                                                                      dict[str, list[list[str]]], dict[str, float]]:
    """Per model, its answers to each held-out prompt and to each instruction-following prompt; and the
    seconds each model took. A progress line per model as its prompts are answered, a batch at a time."""
    from alma.core.engine_api import Sampling
    from alma.jobs.progress import Reporter

    decoding = cfg.eval.sampling or cfg.round.sampling
    n = cfg.eval.responses_per_prompt
    # One seed for every model: the models differ, the sampling noise they are given does not.
    held_out = Sampling(decoding.max_new_tokens, decoding.temperature, decoding.top_p, tuple(decoding.stop),
                        seed=cfg.seed)
    ruled = replace(held_out, max_new_tokens=cfg.eval.ifeval_max_new_tokens or decoding.max_new_tokens)
    sets = [([p.prompt for p in prompts], held_out), ([p.prompt for p in ifeval_prompts], ruled)]
    total = len(prompts) + len(ifeval_prompts)
    # An engine batch at a time (every model the same batches, so equal weights still give equal answers).
    chunk = max(1, cfg.model.max_batch_size // n)
    answers: list[dict[str, list[list[str]]]] = [{}, {}]
    seconds = {}
    for name, folder in models:
        started = time.perf_counter()
        say(f"eval: {name} answers {total} prompts x {n}")
        engine = load_model(cfg, folder)
        progress = Reporter(f"eval: {name} answering", total, "prompts")
        done = 0
        try:
            for (texts, sampling), out in zip(sets, answers):
                out[name] = []
                for start in range(0, len(texts), chunk):
                    chats = [[{"role": "user", "content": t}] for t in texts[start:start + chunk]]
                    out[name] += engine.generate(chats, n, sampling)
                    progress.update(done + len(out[name]))
                done += len(texts)
        finally:
            progress.close()
            engine.close()  # before the next model loads: one model (and one vLLM engine) at a time
        seconds[name] = round(time.perf_counter() - started, 2)
        say(f"eval: {name} answered {total} prompts x {n} in {seconds[name]}s")
    return answers[0], answers[1], seconds


def _answer_pairs(models: list[tuple[str, Path]], prompts: list[EvalPrompt],
                  answers: dict[str, list[list[str]]]) -> list[tuple[str, int, int, str, str]]:
    """(model, prompt index, sample, prompt, answer) for every answer, in a fixed order."""
    return [(name, i, s, p.prompt, text) for name, _ in models for i, p in enumerate(prompts)
            for s, text in enumerate(answers[name][i])]


def _per_answer(models: list[tuple[str, Path]], answers: dict[str, list[list[str]]], texts: list[str],
                score_of: dict[tuple[str, str], float]) -> dict[str, list[list[float]]]:
    """model -> prompt -> sample -> the judge's score of that answer."""
    return {name: [[score_of[text, a] for a in row] for text, row in zip(texts, answers[name])]
            for name, _ in models}


def summarize(cfg: AlmaConfig, models: list[tuple[str, Path]], per_prompt: dict[str, list[float]],
              seconds: dict[str, float]) -> list[dict[str, Any]]:
    """One row per model, in order (round 0 is the initial SFT model)."""
    baseline = models[0][0]
    rows = []
    for k, (name, folder) in enumerate(models):
        scores = per_prompt[name]
        previous = models[k - 1][0] if k else None
        rows.append({
            "model": name, "round": k, "checkpoint": str(folder),
            "mean_score": mean(scores),
            "mean_score_ci": list(bootstrap_ci(scores, cfg.eval.bootstrap, cfg.eval.confidence, cfg.seed)),
            "scored_prompts": sum(1 for s in scores if not math.isnan(s)),
            "vs_initial": compare(scores, per_prompt[baseline], cfg) if k else None,
            "previous": previous,
            "vs_previous": compare(scores, per_prompt[previous], cfg) if k else None,
            "seconds": seconds.get(name),
        })
    return rows


def by_category(cfg: AlmaConfig, models: list[tuple[str, Path]], prompts: list[EvalPrompt],
                per_prompt: dict[str, list[float]]) -> dict[str, list[dict[str, Any]]]:
    """The summary rows again over each category's prompts (a prompt without one is `uncategorized`)."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p.category or UNCATEGORIZED, []).append(i)
    return {category: [{**row, "prompts": len(idx)} for row in summarize(
        cfg, models, {name: [scores[i] for i in idx] for name, scores in per_prompt.items()}, {})]
        for category, idx in groups.items()}


def format_table(rows: list[dict[str, Any]], confidence: float) -> str:
    level = f"{confidence:.0%} CI"
    head = (f"{'model':<10} {'round':>5} {'mean score':>10} {level:>16} {'win vs initial':>14} {level:>16} "
            f"{'win vs previous':>15} {level:>16}")
    lines = [head, "-" * len(head)]
    for row in rows:
        line = f"{row['model']:<10} {row['round']:>5} {row['mean_score']:>10.3f} {format_interval(row['mean_score_ci']):>16}"
        for key, width in (("vs_initial", 14), ("vs_previous", 15)):
            cmp = row[key]
            line += f" {'-':>{width}} {'-':>16}" if cmp is None else \
                f" {cmp['rate']:>{width}.3f} {format_interval(cmp['ci']):>16}"
        lines.append(line)
    return "\n".join(lines)


def format_category_table(categories: dict[str, list[dict[str, Any]]], confidence: float) -> str:
    level = f"{confidence:.0%} CI"
    head = (f"{'category':<20} {'prompts':>7} {'model':<10} {'mean score':>10} {level:>16} {'win vs initial':>14} "
            f"{level:>16}")
    lines = [head, "-" * len(head)]
    for category, rows in sorted(categories.items()):
        for row in rows:
            cmp = row["vs_initial"]
            win, ci = ("-", "-") if cmp is None else (f"{cmp['rate']:.3f}", format_interval(cmp["ci"]))
            lines.append(f"{category[:20]:<20} {row['prompts']:>7} {row['model']:<10} {row['mean_score']:>10.3f} "
                         f"{format_interval(row['mean_score_ci']):>16} {win:>14} {ci:>16}")
    return "\n".join(lines)


def _judge_table(title: str, rows: list[dict[str, Any]], categories: dict[str, list[dict[str, Any]]],
                 confidence: float) -> str:
    text = f"{title}\n{format_table(rows, confidence)}"
    if len(categories) > 1:
        text += f"\nper category:\n{format_category_table(categories, confidence)}"
    return text


def model_eval_main(args: argparse.Namespace) -> int:
    """Run the evaluation the parsed flags describe; user errors raise alma.core.errors subclasses."""
    from alma.core.judge_api import load_token

    run = Path(args.run).resolve()
    cfg = load_run_config(run, args.overrides)
    prompts = load_eval_prompts(args.prompts, with_bundled=not args.no_bundled)
    with_ifeval = cfg.eval.ifeval and not args.no_ifeval
    ifeval_file = Path(cfg.eval.ifeval_prompts) if cfg.eval.ifeval_prompts else bundled(IFEVAL_BUNDLED)
    ifeval_prompts = load_ifeval_prompts(ifeval_file) if with_ifeval else []
    models = run_models(run, cfg)
    names = [name for name, _ in models]
    served = args.judge_url or any(w.startswith(("http://", "https://")) for w in args.second_judge)
    token = load_token(args.token_file) if served else None
    judge = primary_judge(args, cfg, run, token)
    others = second_opinions(args, cfg, token)
    ruled = [EvalPrompt(prompt_id(p.prompt), p.prompt, f"{ifeval_file}:{p.line}") for p in ifeval_prompts]
    overlap = contamination(run, cfg, prompts + ruled)
    _warn(overlap, prompts)

    answers, ifeval_answers, seconds = generate_answers(cfg, models, prompts, ifeval_prompts)
    n = cfg.eval.responses_per_prompt
    flat = _answer_pairs(models, prompts, answers)
    texts, ifeval_texts = [p.prompt for p in prompts], [p.prompt for p in ifeval_prompts]
    held_out_pairs = list(dict.fromkeys((prompt, text) for _, _, _, prompt, text in flat))
    # The run judge scores the instruction-following answers only to pick a best of N among them.
    pick_ifeval = bool(ifeval_prompts) and n >= 2
    ifeval_pairs = [(t, a) for name in names for t, row in zip(ifeval_texts, ifeval_answers[name]) for a in row]
    # Each distinct (prompt, answer) is judged once: two models that give the same answer get the same
    # score (in a batch, padding moves a score in its last digits), and the judge does less work.
    pairs = list(dict.fromkeys(held_out_pairs + (ifeval_pairs if pick_ifeval else [])))
    judged, judging = timed(judge, pairs, "eval: run judge scoring")
    judge_info = {**judge.info, **judging, "independence": judge.independence}
    score_of = dict(zip(pairs, judged))
    per_answer = _per_answer(models, answers, texts, score_of)
    per_prompt = {name: [mean(s) for s in rows] for name, rows in per_answer.items()}
    rows = summarize(cfg, models, per_prompt, seconds)
    categories = by_category(cfg, models, prompts, per_prompt)

    rounds = round_picks(run, cfg)
    opinions, second_eval, second_rounds = [], {}, {}
    for other in others:
        wanted = list(dict.fromkeys(held_out_pairs + round_pairs(rounds)))
        got, judging = timed(other, wanted, f"eval: {other.name} scoring")
        second_rounds[other.name] = dict(zip(wanted, got))
        second_eval[other.name] = _per_answer(models, answers, texts, second_rounds[other.name])
        their_prompt = {name: [mean(s) for s in rows] for name, rows in second_eval[other.name].items()}
        opinions.append({"name": other.name, "kind": other.kind, "independence": other.independence, **other.info,
                         **judging, "models": summarize(cfg, models, their_prompt, {}),
                         "categories": by_category(cfg, models, prompts, their_prompt)})

    graded = {name: [[grade(p, a) for a in row] for p, row in zip(ifeval_prompts, ifeval_answers[name])]
              for name in names} if with_ifeval else None
    ifeval_scores = _per_answer(models, ifeval_answers, ifeval_texts, score_of) if pick_ifeval else None
    ifeval = _ifeval_section(cfg, names, ifeval_file, ifeval_prompts, ifeval_answers, graded, ifeval_scores) \
        if with_ifeval else {"enabled": False}
    best_vs_random = {
        "eval": best_vs_random_eval(cfg, names, ifeval_keys=[p.id for p in ifeval_prompts],
                                    ifeval_scores=ifeval_scores, ifeval_graded=graded,
                                    keys=[p.prompt_id for p in prompts], scores=per_answer, second=second_eval),
        "rounds": best_vs_random_rounds(cfg, rounds, second_rounds),
    }
    evaluators = [{"name": "run judge", "table": "models", "independence": judge.independence}]
    if with_ifeval:
        evaluators.append({"name": IFEVAL, "table": "ifeval", "independence": IFEVAL_INDEPENDENCE})
    evaluators += [{"name": o["name"], "table": f"second_opinions[{i}]", "independence": o["independence"]}
                   for i, o in enumerate(opinions)]

    out = Path(args.out) if args.out else RunLayout(run).model_eval
    decoding = cfg.eval.sampling or cfg.round.sampling
    write_json_atomic(out, _json_safe({
        "run": str(run), "training": cfg.round.training, "baseline": models[0][0], "judge": judge_info,
        "prompts": [asdict(p) for p in prompts], "responses_per_prompt": n,
        "sampling": {**decoding.model_dump(), "seed": cfg.seed},
        "bootstrap": {"resamples": cfg.eval.bootstrap, "confidence": cfg.eval.confidence, "seed": cfg.seed},
        "contamination": overlap, "evaluators": evaluators, "models": rows, "categories": categories,
        "ifeval": ifeval, "second_opinions": opinions, "best_vs_random": best_vs_random,
        "answers": [{"model": name, "prompt_id": prompts[i].prompt_id, "sample": s, "response": text,
                     "score": per_answer[name][i][s],
                     "second_opinion_scores": {o: second_eval[o][name][i][s] for o in second_eval}}
                    for (name, i, s, _, text) in flat],
    }))
    level = cfg.eval.confidence
    print(_judge_table(f"run judge ({judge.independence}):", rows, categories, level))
    if with_ifeval:
        print(f"\ninstruction following, {len(ifeval_prompts)} rule-checked prompts ({IFEVAL_INDEPENDENCE}):")
        print(format_ifeval_table(ifeval["models"], level))
    for o in opinions:
        unscored = f"; {o['unscored']} of {o['judgments']} judgments unscored" if o["unscored"] else ""
        print("\n" + _judge_table(f"second opinion {o['name']} ({o['independence']}{unscored}):", o["models"],
                                  o["categories"], level))
    print("\n" + format_best_vs_random(best_vs_random, level))
    print(f"{len(prompts)} held-out prompts, judge {judge_info.get('checkpoint') or judge_info['url']}; "
          f"written to {out}")
    if not args.out:
        _refresh_report(run)
    return 0


def _warn(overlap: dict[str, list[str]], prompts: list[EvalPrompt]) -> None:
    for key, ids in overlap.items():
        if ids:
            print(f"alma eval: warning: eval prompts {key.replace('_', ' ')} of the run: {len(ids)} (its models "
                  f"trained on them; listed under contamination.{key} in the JSON)", file=sys.stderr)
    later = sum(1 for p in prompts if p.extra.get("later_turns"))
    if later:
        print(f"alma eval: note: {later} multi-turn (MT-Bench) prompts: turn 1 is evaluated; the later turns are "
              "kept in the JSON (prompts[].extra.later_turns), not answered", file=sys.stderr)


def _ifeval_section(cfg: AlmaConfig, names: list[str], path: Path, prompts: list[IfevalPrompt],
                    answers: dict[str, list[list[str]]], graded: dict[str, list[list[list[bool]]]],
                    scores: dict[str, list[list[float]]] | None) -> dict[str, Any]:
    """The JSON of the instruction-following yardstick: its prompts, per-model table and every graded answer
    (with the run judge's score when N >= 2 made it pick among them)."""
    return {
        "enabled": True, "file": str(path), "independence": IFEVAL_INDEPENDENCE,
        "max_new_tokens": cfg.eval.ifeval_max_new_tokens or (cfg.eval.sampling or cfg.round.sampling).max_new_tokens,
        "prompts": [{"id": p.id, "prompt_id": prompt_id(p.prompt), "prompt": p.prompt,
                     "constraints": [{**c.as_dict(), "family": c.family} for c in p.constraints]} for p in prompts],
        "models": ifeval_summary(cfg, names, prompts, graded),
        "answers": [{"model": name, "id": p.id, "sample": s, "response": a, "met": graded[name][j][s],
                     "score": scores[name][j][s] if scores else None}
                    for name in names for j, p in enumerate(prompts) for s, a in enumerate(answers[name][j])],
    }


def _refresh_report(run: Path) -> None:
    """Redraw the run's report so that it shows this evaluation (its `model_eval.png` section). A report
    that cannot be drawn is said, never a failed evaluation: the JSON is written by then."""
    from alma.commands.report import write_report

    try:
        print(f"report: {write_report(run)[0]}")
    except Exception as e:  # noqa: BLE001 - the evaluation itself succeeded; `alma report RUN` retries
        print(f"report: not redrawn ({type(e).__name__}: {e}); `alma report {run}` retries", file=sys.stderr)
