"""`alma eval RUN`: does alignment improve round over round?

The initial SFT model (`eval.baseline`, sft-1) and every round's model (`checkpoints/round-<r>`) answer the
same held-out prompts (`eval.responses_per_prompt` answers each, decoded with `eval.sampling` or the run's
`round.sampling`, one sampling seed for every model). The run's judge scores every answer (the checkpoint
that judged its rounds: `judge-distilled`, else `judge`), or a served judge does (`--judge-url`). Per
model: the mean score, and the win rate against the initial SFT model and against the previous round's
model, prompt by prompt (core.eval_metrics), each with a percentile bootstrap interval over prompts.

Held-out prompts: the bundled `alma/seeds/eval_prompts.jsonl` (24 prompts written for this project; no stage
of a run reads the file) and/or the user's JSONL or Parquet files of {"prompt": ...} rows. Each is checked
against the run's drawn prompts and SFT seed prompts (after case, space and punctuation normalisation) and
any overlap is reported, since a model trained on a prompt is not being evaluated on held-out data there.

Engines run in this process, one model at a time, with no Ray, as in `alma judge eval`. A table is printed
and a JSON written (default `<run>/eval/model_eval.json`, atomically) with every answer and score, so the
numbers can be rechecked and a report can plot them.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alma.config import AlmaConfig, load_run_config
from alma.core.errors import ConfigError, InputError, RunStateError
from alma.core.eval_metrics import bootstrap_ci, mean, outcomes, win_rate
from alma.core.manifest import read_manifest, write_json_atomic
from alma.core.prompts import prompt_id
from alma.core.seeds import bundled, load_prompts, load_sft
from alma.jobs.judge_eval import _json_safe
from alma.jobs.run_context import say

EVAL_FILE = Path("eval") / "model_eval.json"
BUNDLED = "eval_prompts.jsonl"
JUDGES = ("judge-distilled", "judge")  # the run's judge: the distilled one when the run made it


@dataclass(frozen=True)
class EvalPrompt:
    prompt_id: str
    prompt: str
    source: str  # "bundled" or the file it came from, with its line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `alma eval`."""
    parser.add_argument("run", metavar="RUN", help="run folder (local) whose models are evaluated")
    parser.add_argument("--prompts", metavar="FILE", action="append", default=[],
                        help="held-out prompts, JSONL or Parquet rows {\"prompt\": ...}, on top of the bundled 24 "
                             "(repeatable)")
    parser.add_argument("--no-bundled", action="store_true", help="leave out the bundled prompts (needs --prompts)")
    parser.add_argument("--judge-url", metavar="URL",
                        help="score with a served judge (`alma judge serve`, POST /v1/rank) instead of the run's")
    parser.add_argument("--token-file", metavar="FILE",
                        help="bearer token of --judge-url (default: $ALMA_JUDGE_TOKEN)")
    parser.add_argument("--json", metavar="FILE", help=f"where to write the results (default: <run>/{EVAL_FILE})")
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
        for line, text in load_prompts(path):
            key = prompt_id(text)
            where = f"{path}:{line}"
            if key in seen:
                raise InputError(str(path), line, "prompt", f"the same prompt as {seen[key]}")
            seen[key] = where
            out.append(EvalPrompt(key, text, label or where))
    return out


def run_models(run: Path, cfg: AlmaConfig) -> list[tuple[str, Path]]:
    """(name, checkpoint folder) of the initial SFT model, then of each committed round's model in order."""
    folders = [(cfg.eval.baseline, run / "checkpoints" / cfg.eval.baseline)]
    if read_manifest(folders[0][1]) is None:
        raise RunStateError(f"{run} has no committed {cfg.eval.baseline} checkpoint to evaluate against")
    for r in range(1, cfg.rounds + 1):
        folder = run / "checkpoints" / f"round-{r}"
        if read_manifest(folder) is None:
            break
        folders.append((f"round-{r}", folder))
    return folders


def run_judge(run: Path) -> Path:
    for name in JUDGES:
        if read_manifest(run / "checkpoints" / name) is not None:
            return run / "checkpoints" / name
    raise RunStateError(f"{run} has no committed judge checkpoint; pass --judge-url of a served judge")


def contamination(run: Path, cfg: AlmaConfig, prompts: list[EvalPrompt]) -> dict[str, list[str]]:
    """Eval prompts the run trained on, by prompt id (a hash of the normalised text): drawn by a round, or a
    prompt of the SFT seed."""
    import pyarrow.parquet as pq

    drawn: set[str] = set()
    for folder in sorted((run / "rounds").glob("*/draw")):
        if read_manifest(folder) is not None:
            drawn |= set(pq.read_table(folder / "draw.parquet", columns=["prompt_id"])["prompt_id"].to_pylist())
    seed_file = Path(cfg.seed_sft) if cfg.seed_sft else bundled("sft.jsonl")
    seeded = {prompt_id(e.user_prompt) for e in load_sft(seed_file)} if seed_file.is_file() else set()
    return {"in_draws": [p.prompt_id for p in prompts if p.prompt_id in drawn],
            "in_sft_seed": [p.prompt_id for p in prompts if p.prompt_id in seeded]}


def _engine(cfg: AlmaConfig, checkpoint: Path):
    from alma.engines.factory import load_engine

    return load_engine(cfg.model.engine, checkpoint, cfg.model.dtype, cfg.model.max_batch_size, cfg.model.threads,
                       cfg.model.trust_remote_code, device=cfg.model.device, vllm=cfg.model.vllm.model_dump())


def generate_answers(cfg: AlmaConfig, models: list[tuple[str, Path]],
                     prompts: list[EvalPrompt]) -> tuple[dict[str, list[list[str]]], dict[str, float]]:
    """Per model, its answers to each prompt; and the seconds each model took."""
    from alma.engines.base import Sampling

    decoding = cfg.eval.sampling or cfg.round.sampling
    # One seed for every model: the models differ, the sampling noise they are given does not.
    sampling = Sampling(decoding.max_new_tokens, decoding.temperature, decoding.top_p, tuple(decoding.stop),
                        seed=cfg.seed)
    chats = [[{"role": "user", "content": p.prompt}] for p in prompts]
    answers, seconds = {}, {}
    for name, folder in models:
        started = time.perf_counter()
        engine = _engine(cfg, folder)
        try:
            answers[name] = engine.generate(chats, cfg.eval.responses_per_prompt, sampling)
        finally:
            engine.close()  # before the next model loads: one model (and one vLLM engine) at a time
        seconds[name] = round(time.perf_counter() - started, 2)
        say(f"eval: {name} answered {len(prompts)} prompts x {cfg.eval.responses_per_prompt} in {seconds[name]}s")
    return answers, seconds


def score_in_process(cfg: AlmaConfig, judge_folder: Path, pairs: list[tuple[str, str]]) -> list[float]:
    from alma.core.judge_modes import judge
    from alma.core.judge_prompt import judge_messages, load_rubric

    rubric = load_rubric(cfg.judge.rubric)
    engine = _engine(cfg, judge_folder)
    try:
        judgments = judge(engine, [judge_messages(p, r, rubric) for p, r in pairs], cfg.judge.answer_prefix,
                          cfg.judge.scoring, cfg.judge.samples, cfg.judge.sample_temperature, seed=cfg.seed)
    finally:
        engine.close()
    return [j.score for j in judgments]


def score_with_endpoint(url: str, token: str | None, pairs: list[tuple[str, str]],
                        timeout: float = 300.0) -> tuple[list[float], str]:
    """Scores from a served judge: one /v1/rank request per prompt (split to the server's max_responses);
    a score the judge could not give (null) is NaN. Returns (scores, the judge's model name)."""
    from alma.judge_client import JudgeClientError, call

    models = call(url, "/v1/models", None, token, timeout).get("data") or [{}]
    limit = int(models[0].get("max_responses") or 16)
    by_prompt: dict[str, list[int]] = {}
    for i, (prompt, _) in enumerate(pairs):
        by_prompt.setdefault(prompt, []).append(i)
    scores = [math.nan] * len(pairs)
    for prompt, rows in by_prompt.items():
        for start in range(0, len(rows), limit):
            chunk = rows[start:start + limit]
            answer = call(url, "/v1/rank", {"prompt": prompt, "responses": [pairs[i][1] for i in chunk]}, token,
                          timeout)
            if len(answer.get("scores", [])) != len(chunk):
                raise JudgeClientError(f"{url}: /v1/rank answered {len(answer.get('scores', []))} scores for "
                                       f"{len(chunk)} responses")
            for i, score in zip(chunk, answer["scores"]):
                scores[i] = math.nan if score is None else float(score)
    return scores, str(models[0].get("id", url))


def _answer_pairs(models: list[tuple[str, Path]], prompts: list[EvalPrompt],
                  answers: dict[str, list[list[str]]]) -> list[tuple[str, int, int, str, str]]:
    """(model, prompt index, sample, prompt, answer) for every answer, in a fixed order."""
    return [(name, i, s, p.prompt, text) for name, _ in models for i, p in enumerate(prompts)
            for s, text in enumerate(answers[name][i])]


def compare(a: list[float], b: list[float], cfg: AlmaConfig) -> dict[str, Any]:
    """A against B prompt by prompt: the win rate (ties half), its counts and its bootstrap interval."""
    return {**asdict(win_rate(a, b)),
            "ci": list(bootstrap_ci(outcomes(a, b), cfg.eval.bootstrap, cfg.eval.confidence, cfg.seed))}


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


def _interval(ci: list[float]) -> str:
    return "-" if math.isnan(ci[0]) else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def format_table(rows: list[dict[str, Any]], confidence: float) -> str:
    level = f"{confidence:.0%} CI"
    head = (f"{'model':<10} {'round':>5} {'mean score':>10} {level:>16} {'win vs initial':>14} {level:>16} "
            f"{'win vs previous':>15} {level:>16}")
    lines = [head, "-" * len(head)]
    for row in rows:
        line = f"{row['model']:<10} {row['round']:>5} {row['mean_score']:>10.3f} {_interval(row['mean_score_ci']):>16}"
        for key, width in (("vs_initial", 14), ("vs_previous", 15)):
            cmp = row[key]
            line += f" {'-':>{width}} {'-':>16}" if cmp is None else \
                f" {cmp['rate']:>{width}.3f} {_interval(cmp['ci']):>16}"
        lines.append(line)
    return "\n".join(lines)


def model_eval_main(args: argparse.Namespace) -> int:
    """Run the evaluation the parsed flags describe; user errors raise alma.core.errors subclasses."""
    from alma.core.judge_service import load_token

    run = Path(args.run).resolve()
    cfg = load_run_config(run, args.overrides)
    prompts = load_eval_prompts(args.prompts, with_bundled=not args.no_bundled)
    models = run_models(run, cfg)
    token = load_token(args.token_file) if args.judge_url else None
    judge_folder = None if args.judge_url else run_judge(run)
    overlap = contamination(run, cfg, prompts)
    for key, ids in overlap.items():
        if ids:
            print(f"alma eval: warning: eval prompts {key.replace('_', ' ')} of the run: {len(ids)} (its models "
                  f"trained on them; listed under contamination.{key} in the JSON)", file=sys.stderr)

    answers, seconds = generate_answers(cfg, models, prompts)
    flat = _answer_pairs(models, prompts, answers)
    # Each distinct (prompt, answer) is judged once: two models that give the same answer get the same
    # score (in a batch, padding moves a score in its last digits), and the judge does less work.
    pairs = list(dict.fromkeys((prompt, text) for _, _, _, prompt, text in flat))
    started = time.perf_counter()
    if args.judge_url:
        judged, judge_name = score_with_endpoint(args.judge_url, token, pairs)
        judge_info = {"url": args.judge_url, "model": judge_name}
    else:
        judged = score_in_process(cfg, judge_folder, pairs)
        judge_info = {"checkpoint": str(judge_folder), "scoring": cfg.judge.scoring}
    judge_info.update(judgments=len(pairs), seconds=round(time.perf_counter() - started, 2))
    score_of = dict(zip(pairs, judged))
    scores = [score_of[prompt, text] for _, _, _, prompt, text in flat]
    per_answer: dict[str, list[list[float]]] = {name: [[] for _ in prompts] for name, _ in models}
    for (name, i, _, _, _), score in zip(flat, scores):
        per_answer[name][i].append(score)
    per_prompt = {name: [mean(s) for s in rows] for name, rows in per_answer.items()}
    rows = summarize(cfg, models, per_prompt, seconds)

    out = Path(args.json) if args.json else run / EVAL_FILE
    decoding = cfg.eval.sampling or cfg.round.sampling
    write_json_atomic(out, _json_safe({
        "run": str(run), "training": cfg.round.training, "baseline": models[0][0], "judge": judge_info,
        "prompts": [asdict(p) for p in prompts], "responses_per_prompt": cfg.eval.responses_per_prompt,
        "sampling": {**decoding.model_dump(), "seed": cfg.seed},
        "bootstrap": {"resamples": cfg.eval.bootstrap, "confidence": cfg.eval.confidence, "seed": cfg.seed},
        "contamination": overlap, "models": rows,
        "answers": [{"model": name, "prompt_id": prompts[i].prompt_id, "sample": s, "response": text, "score": score}
                    for (name, i, s, _, text), score in zip(flat, scores)],
    }))
    print(format_table(rows, cfg.eval.confidence))
    print(f"{len(prompts)} held-out prompts, judge {judge_info.get('checkpoint') or judge_info['url']}; "
          f"written to {out}")
    if not args.json:
        _refresh_report(run)
    return 0


def _refresh_report(run: Path) -> None:
    """Redraw the run's report so that it shows this evaluation (its `model_eval.png` section). A report
    that cannot be drawn is said, never a failed evaluation: the JSON is written by then."""
    from alma.jobs.report import write_report

    try:
        print(f"report: {write_report(run)[0]}")
    except Exception as e:  # noqa: BLE001 - the evaluation itself succeeded; `alma report RUN` retries
        print(f"report: not redrawn ({type(e).__name__}: {e}); `alma report {run}` retries", file=sys.stderr)
