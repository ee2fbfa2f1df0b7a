"""The judges of `alma eval`: the run's own, and second opinions from outside the run.

Every judge here scores (prompt, answer) pairs on the 0..10 scale and returns one float per pair, NaN
where it gave no score:
- the run's judge, in this process (`checkpoints/judge-distilled`, else `checkpoints/judge`), or a served
  stand-in for it (`--judge-url`);
- `--second-judge DIR`: another judge checkpoint, scored in this process exactly as the run's judge is
  (the run's `judge.*` settings); `--second-judge URL`: a served alma judge (POST /v1/rank);
- `--chat-judge-url URL --chat-judge-model NAME`: any OpenAI-compatible chat-completions endpoint, sent
  the same judge prompt (core.judge_prompt, with the run's rubric) and read for its first "[[N]]"; a reply
  without one is NaN, counted as unscored, never a score.

What each is independent of is written next to its table (`INDEPENDENCE`, docs/evaluation.md). The
judges are checked before any model generates (a folder that is not there, an endpoint that refuses), so
that a wrong flag costs seconds, not an evaluation.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alma.config import AlmaConfig
from alma.core.errors import ConfigError
from alma.core.retries import RetryPolicy, call_with_retries
from alma.core.scoring import parse_bracket_score

CHAT_TOKEN_ENV = "ALMA_CHAT_JUDGE_TOKEN"
CHAT_RETRIES = RetryPolicy(retries=3, backoff_s=1.0, max_backoff_s=8.0)

INDEPENDENCE = {
    "run-judge": "not independent: this judge chose every round's training data",
    "served": "as the judge it serves: not independent when that is the run's judge",
    "checkpoint": "independent of the selection only if trained on data the run's judge never saw; shares the "
                  "base model's biases unless trained from another base",
    "chat": "independent when the endpoint's model neither trained nor judged this run",
}

Pairs = list[tuple[str, str]]


@dataclass
class Judge:
    """A way to score pairs, with what the results JSON says about it."""

    name: str
    kind: str  # run-judge, served, checkpoint or chat
    score: Callable[[Pairs, str], list[float]]  # (pairs, progress label) -> one score per pair
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def independence(self) -> str:
        return INDEPENDENCE[self.kind]


def load_model(cfg: AlmaConfig, checkpoint: Path):
    """An engine of the checkpoint with the run's model settings (one at a time: the caller closes it)."""
    from alma.engines.factory import EngineSettings, load_engine

    return load_engine(checkpoint, EngineSettings.of(cfg.model))


def _reporter(label: str, total: int, unit: str):
    from alma.jobs.progress import Reporter

    return Reporter(label, total, unit)


def score_in_process(cfg: AlmaConfig, judge_folder: Path, pairs: Pairs, label: str = "eval: judging") -> list[float]:
    """The judge checkpoint's score of each pair with the run's judge settings, a few batches per progress
    count."""
    from alma.core.judge_modes import judge
    from alma.core.judge_prompt import judge_messages, load_rubric

    rubric = load_rubric(cfg.judge.rubric)
    chunk = 4 * cfg.model.max_batch_size
    scores: list[float] = []
    engine = load_model(cfg, judge_folder)
    progress = _reporter(label, len(pairs), "answers")
    try:
        for start in range(0, len(pairs), chunk):
            part = [judge_messages(p, r, rubric) for p, r in pairs[start:start + chunk]]
            scores += [j.score for j in judge(engine, part, cfg.judge.answer_prefix, cfg.judge.scoring,
                                              cfg.judge.samples, cfg.judge.sample_temperature, seed=cfg.seed)]
            progress.update(len(scores))
    finally:
        progress.close()
        engine.close()
    return scores


def served_models(url: str, token: str | None, timeout: float = 60.0) -> dict[str, Any]:
    """The first model a served judge lists (GET /v1/models): its id and max_responses."""
    from alma.judge_client import call

    return (call(url, "/v1/models", None, token, timeout).get("data") or [{}])[0]


def score_with_endpoint(url: str, token: str | None, pairs: Pairs, timeout: float = 300.0,
                        label: str = "eval: judging") -> tuple[list[float], str]:
    """Scores from a served judge: one /v1/rank request per prompt (split to the server's max_responses);
    a score the judge could not give (null) is NaN. Returns (scores, the judge's model name)."""
    from alma.judge_client import JudgeClientError, call

    model = served_models(url, token, timeout)
    limit = int(model.get("max_responses") or 16)
    by_prompt: dict[str, list[int]] = {}
    for i, (prompt, _) in enumerate(pairs):
        by_prompt.setdefault(prompt, []).append(i)
    scores = [math.nan] * len(pairs)
    done = 0
    progress = _reporter(label, len(pairs), "answers")
    try:
        for prompt, rows in by_prompt.items():
            for start in range(0, len(rows), limit):
                chunk = rows[start:start + limit]
                answer = call(url, "/v1/rank", {"prompt": prompt, "responses": [pairs[i][1] for i in chunk]},
                              token, timeout)
                if len(answer.get("scores", [])) != len(chunk):
                    raise JudgeClientError(f"{url}: /v1/rank answered {len(answer.get('scores', []))} scores for "
                                           f"{len(chunk)} responses")
                for i, score in zip(chunk, answer["scores"]):
                    scores[i] = math.nan if score is None else float(score)
                done += len(chunk)
                progress.update(done)
    finally:
        progress.close()
    return scores, str(model.get("id", url))


def chat_completions_url(url: str) -> str:
    """The endpoint to POST to: the URL as given when it names /chat/completions, else that route under it
    (so both `http://host:8000/v1` and `http://host:8000/v1/chat/completions` work)."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def chat_reply_score(answer: dict[str, Any]) -> tuple[float, str]:
    """(score, reply text) of a chat-completions answer: the first "[[N]]" of the first choice's message,
    NaN when there is none (or no message at all)."""
    try:
        text = answer["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return math.nan, ""
    if not isinstance(text, str):
        return math.nan, ""
    value = parse_bracket_score(text)
    return (math.nan if value is None else float(value)), text


class ChatJudge:
    """An OpenAI-compatible chat endpoint asked for the run's judge prompt, one request per pair."""

    def __init__(self, url: str, model: str, token: str | None, rubric: str, max_tokens: int = 64,
                 concurrency: int = 4, timeout: float = 120.0, policy: RetryPolicy = CHAT_RETRIES):
        self.url, self.model, self.token, self.rubric = chat_completions_url(url), model, token, rubric
        self.max_tokens, self.concurrency, self.timeout, self.policy = max_tokens, concurrency, timeout, policy
        self.unparsed: list[str] = []  # replies with no "[[N]]", a few kept for the JSON

    def request(self, prompt: str, response: str) -> dict[str, Any]:
        from alma.core.judge_prompt import judge_messages

        return {"model": self.model, "messages": judge_messages(prompt, response, self.rubric), "temperature": 0,
                "max_tokens": self.max_tokens}

    def _ask(self, prompt: str, response: str) -> float:
        from alma.judge_client import JudgeClientError, call

        body = self.request(prompt, response)
        outcome = call_with_retries(lambda: call(self.url, "", body, self.token, self.timeout), self.policy)
        if not outcome.ok:
            raise JudgeClientError(f"{self.url}: {outcome.error} (after {outcome.attempts} attempts)")
        score, text = chat_reply_score(outcome.value)
        if math.isnan(score) and len(self.unparsed) < 5:
            self.unparsed.append(text[:300])
        return score

    def check(self) -> None:
        """One request, so that a wrong URL, model or token fails before any answer is generated."""
        self._ask("Say hello.", "Hello!")

    def score(self, pairs: Pairs, label: str = "eval: chat judge") -> list[float]:
        scores = [math.nan] * len(pairs)
        progress = _reporter(label, len(pairs), "answers")
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                futures = {pool.submit(self._ask, p, r): i for i, (p, r) in enumerate(pairs)}
                for done, future in enumerate(as_completed(futures), start=1):
                    scores[futures[future]] = future.result()
                    progress.update(done)
        finally:
            progress.close()
        return scores


def read_chat_token(token_file: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The chat endpoint's bearer token: the file's content, else $ALMA_CHAT_JUDGE_TOKEN, else none."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{token_file}: cannot read the token file ({e.__class__.__name__})") from None
        if not token or any(c.isspace() for c in token):
            raise ConfigError(f"{token_file}: the token file must hold one token with no spaces")
        return token
    return (os.environ if environ is None else environ).get(CHAT_TOKEN_ENV, "").strip() or None


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def second_opinions(args: argparse.Namespace, cfg: AlmaConfig, served_token: str | None) -> list[Judge]:
    """The second-opinion judges the flags name, each checked now (folder present, endpoint answering)."""
    from alma.core.judge_prompt import load_rubric

    judges: list[Judge] = []
    for where in args.second_judge:
        if _is_url(where):
            model = served_models(where, served_token)
            name = f"served:{model.get('id', where)}"
            judges.append(Judge(name, "served", lambda pairs, label, url=where: score_with_endpoint(
                url, served_token, pairs, label=label)[0], {"url": where, "model": model.get("id")}))
            continue
        folder = Path(where).resolve()
        if not (folder / "config.json").is_file():
            raise ConfigError(f"--second-judge {where}: not a model checkpoint folder (no config.json)")
        judges.append(Judge(f"judge:{folder.name}", "checkpoint",
                            lambda pairs, label, f=folder: score_in_process(cfg, f, pairs, label),
                            {"checkpoint": str(folder), "scoring": cfg.judge.scoring}))
    if args.chat_judge_url:
        if not args.chat_judge_model:
            raise ConfigError("--chat-judge-url needs --chat-judge-model NAME (the model the endpoint serves)")
        chat = ChatJudge(args.chat_judge_url, args.chat_judge_model, read_chat_token(args.chat_judge_token_file),
                         load_rubric(cfg.judge.rubric), cfg.eval.chat_judge_max_tokens, cfg.eval.chat_judge_concurrency,
                         cfg.eval.chat_judge_timeout_s)
        chat.check()
        judges.append(Judge(f"chat:{args.chat_judge_model}", "chat", chat.score,
                            {"url": chat.url, "model": chat.model, "unparsed_replies": chat.unparsed}))
    names = [j.name for j in judges]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"second opinion {name} given twice")
    return judges


def timed(judge: Judge, pairs: Pairs, label: str) -> tuple[list[float], dict[str, Any]]:
    """The judge's scores of the pairs, and what the JSON says of the judging (counts and seconds)."""
    started = time.perf_counter()
    scores = judge.score(pairs, label) if pairs else []
    return scores, {"judgments": len(pairs), "unscored": sum(1 for s in scores if math.isnan(s)),
                    "seconds": round(time.perf_counter() - started, 2)}
