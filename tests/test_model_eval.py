"""`alma eval`: held-out prompt files checked with file:line errors, the per-round report on a run folder of
tiny models (answers, judge scores, rule-checked compliance, second opinions, best-of-N against a random
pick, win rates, intervals, JSON), a served judge and an OpenAI-compatible chat judge over loopback HTTP,
and that no stage of a run reads the held-out prompts."""

import argparse
import json
import math
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from alma.cli import main
from alma.config import load_config
from alma.core.errors import ConfigError, InputError
from alma.core.eval_prompts import load_eval_rows
from alma.core.ifeval import parse_prompt
from alma.core.judge_prompt import SCALE, judge_messages
from alma.core.prompts import normalize
from alma.core.retries import RetryPolicy
from alma.core.seeds import bundled, load_judge, load_sft
from alma.judge_client import JudgeClientError
from alma.commands.eval_judges import (ChatJudge, chat_completions_url, chat_reply_score, score_with_endpoint,
                                   second_opinions)
from alma.commands.eval_yardsticks import (NO_SECOND_OPINION, best_vs_random_eval, best_vs_random_rounds,
                                       format_best_vs_random, format_ifeval_table, ifeval_summary, round_pairs,
                                       round_picks)
from alma.commands.model_eval import (BUNDLED, IFEVAL_BUNDLED, EvalPrompt, by_category, format_category_table,
                                  format_table, load_eval_prompts, summarize)

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_prompts_are_held_out():
    prompts = {normalize(r.prompt) for r in load_eval_rows(bundled(BUNDLED))}
    assert len(prompts) == 24
    seen = {normalize(e.user_prompt) for e in load_sft(bundled("sft.jsonl"))}
    seen |= {normalize(e.prompt) for e in load_judge(bundled("judge.jsonl"))}
    assert not prompts & seen, "no eval prompt is a seed prompt"
    for name in (BUNDLED, IFEVAL_BUNDLED):
        named = re.compile(rf"\b{re.escape(name)}")  # eval_prompts.jsonl is not the tail of ifeval_prompts.jsonl
        readers = [p.relative_to(ROOT) for folder in ("alma", "core", "engines", "actors", "jobs", "cluster", "commands")
                   for p in (ROOT / folder).rglob("*.py") if named.search(p.read_text())]
        assert readers == [Path("commands/model_eval.py")], f"only `alma eval` reads {name}"


@pytest.mark.parametrize("text, where", [
    ('{"prompt": "fine"}\n{"prompt": 3}\n', "f.jsonl:2: field 'prompt': expected a string"),
    ('{"prompt": "fine"}\n\n{"prompt": "  "}\n', "f.jsonl:3: field 'prompt': empty"),
    ('{"prompt": "a"}\n{"prompt": "b", "category": 1}\n', "f.jsonl:2: field 'category': expected a string"),
    ('{"prompt": "a"}\n{"turns": ["b", ""]}\n', "f.jsonl:2: field 'turns[1]': empty"),
    ('{"prompt": "a"}\n{"prompt": "a"}\n', "f.jsonl:2: duplicate of line 1"),
    ('{"prompt": "a"\n', "f.jsonl:1: invalid JSON"),
    ('["a"]\n', "f.jsonl:1: expected a JSON object"),
    ('{"prompt": "Explain how a RAINBOW forms"}\n', "f.jsonl:1: field 'prompt': the same prompt as"),
    ("", "f.jsonl: no rows"),
])
def test_prompt_files_are_checked_row_by_row(tmp_path, text, where):
    f = tmp_path / "f.jsonl"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        load_eval_prompts([str(f)])
    assert str(e.value).startswith(str(tmp_path)) and where in str(e.value)


def test_prompt_sources(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text('{"prompt": "Name three prime numbers."}\n{"prompt": "Say hello in French."}\n')
    both = load_eval_prompts([str(f)])
    assert len(both) == 26 and both[0].source == "bundled" and both[-1].source == f"{f}:2"
    assert [p.prompt for p in load_eval_prompts([str(f)], with_bundled=False)] == [
        "Name three prime numbers.", "Say hello in French."]
    bench = tmp_path / "question.jsonl"
    bench.write_text(json.dumps({"question_id": 9, "category": "math", "turns": ["What is 6 x 7?", "And 6 x 8?"],
                                 "reference": ["42", "48"]}) + "\n" + json.dumps({"instruction": "Say hi.",
                                                                                   "dataset": "oasst"}) + "\n")
    mixed = load_eval_prompts([str(f), str(bench)], with_bundled=False)
    assert [(p.category, p.reference) for p in mixed] == [(None, None), (None, None), ("math", "42"), ("oasst", None)]
    assert mixed[2].extra == {"question_id": 9, "later_turns": ["And 6 x 8?"]} and mixed[3].source == f"{bench}:2"


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n')
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert main(["eval", str(tmp_path), "--prompts", str(bad)]) == 2  # not a run folder comes first
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no such run folder" in err[0] and "no config.yaml" in err[1]


def test_summary_arithmetic_by_hand():
    cfg = load_config("tiny", overrides=["eval.bootstrap=200"])
    models = [("sft-1", Path("a")), ("round-1", Path("b")), ("round-2", Path("c"))]
    per_prompt = {"sft-1": [5.0, 5.0, 5.0, 5.0], "round-1": [6.0, 5.0, 4.0, 7.0], "round-2": [6.0, 6.0, math.nan, 7.0]}
    rows = summarize(cfg, models, per_prompt, {})
    assert [r["round"] for r in rows] == [0, 1, 2] and rows[0]["vs_initial"] is None
    assert rows[1]["mean_score"] == 5.5 and rows[2]["mean_score"] == pytest.approx(19 / 3)
    assert rows[2]["scored_prompts"] == 3
    one = rows[1]["vs_initial"]  # win, tie, loss, win
    assert (one["wins"], one["ties"], one["losses"], one["rate"]) == (2, 1, 1, 0.625)
    two = rows[2]["vs_previous"]  # against round-1: tie, win, unscored, tie
    assert rows[2]["previous"] == "round-1" and two["rate"] == pytest.approx(0.625) and two["unscored"] == 1
    for row in rows:
        low, high = row["mean_score_ci"]
        assert low <= row["mean_score"] <= high
    table = format_table(rows, 0.95)
    assert "win vs initial" in table and "0.625" in table and len(table.splitlines()) == 5


class _StubJudge(BaseHTTPRequestHandler):
    """A served judge's /v1/models and /v1/rank: the score of a response is its length (None for '?')."""

    requests: list = []

    def log_message(self, *args):
        pass

    def _answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer({"object": "list", "data": [{"id": "stub", "max_responses": 2}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.headers.get("Authorization"), body))
        self._answer({"scores": [None if r == "?" else float(len(r)) for r in body["responses"]]})


def test_served_judge_scores_in_chunks():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        pairs = [("p", "a"), ("q", "bb"), ("p", "ccc"), ("p", "?"), ("q", "dddd")]
        scores, name = score_with_endpoint(url, "tok" * 6, pairs)
    finally:
        server.shutdown()
    assert name == "stub" and scores[:3] == [1.0, 2.0, 3.0] and math.isnan(scores[3]) and scores[4] == 4.0
    asked = [body for _, body in _StubJudge.requests]
    assert asked == [{"prompt": "p", "responses": ["a", "ccc"]}, {"prompt": "p", "responses": ["?"]},
                     {"prompt": "q", "responses": ["bb", "dddd"]}], "one prompt per request, max_responses each"
    assert all(auth == "Bearer " + "tok" * 6 for auth, _ in _StubJudge.requests)


@pytest.fixture(scope="module")
def tiny_run_folder(tmp_path_factory, tiny_model):
    """A run folder as `alma run --preset tiny --set rounds=2` leaves it, as far as `alma eval` reads it:
    config, committed sft-1, round-1 (other weights), round-2 (sft-1's weights again) and judge, and round 1's
    scores and best-of-N (3 prompts x 3 responses)."""
    import pyarrow as pa
    from run_folder import commit

    from alma.jobs.run_context import RunContext
    from safetensors.numpy import load_file, save_file

    run = tmp_path_factory.mktemp("eval") / "run"
    ctx = RunContext(load_config("tiny", overrides=[f"out_dir={run}", "rounds=2"]), run)
    ctx.open()
    for name in ("sft-1", "round-1", "round-2", "judge"):
        ctx.stage(ctx.layout.checkpoint(name), name, lambda w: shutil.copytree(tiny_model, w.path, dirs_exist_ok=True))
    weights = run / "checkpoints" / "round-1" / "model.safetensors"
    rng = np.random.default_rng(0)
    save_file({k: v + rng.normal(0, 0.05, v.shape).astype(v.dtype) for k, v in load_file(weights).items()},
              weights, metadata={"format": "pt"})
    rows = [{"prompt_id": f"r1-{i}", "prompt": f"Write about topic {i}.", "checkpoint": "sft-1", "sample": s,
             "response": f"Answer {s} about topic {i}.", "score": float(5 + s - i), "missing": 0}
            for i in range(3) for s in range(3)]
    commit(run, "rounds/01/scores", "round 1 judge", {"part-0.parquet": pa.Table.from_pylist(rows)}, rows=9)
    commit(run, "rounds/01/best", "round 1 best-of-N", {"best.parquet": pa.Table.from_pylist(
        [r for r in rows if r["sample"] == 2])}, rows=3)
    return run


@pytest.mark.slow
def test_eval_reports_every_round(tiny_run_folder, tmp_path, capsys, monkeypatch, chat_server):
    monkeypatch.setenv("ALMA_PROGRESS_INTERVAL_S", "0.001")  # a progress line per batch
    prompts = tmp_path / "question.jsonl"
    prompts.write_text("".join(json.dumps({"question_id": n, "category": "lists" if n % 2 else "counting",
                                           "turns": [f"Name {n} colours.", "Now sort them."], "reference": ["red"]})
                               + "\n" for n in range(2, 8)))
    ruled = tmp_path / "ifeval.jsonl"
    ruled.write_text("".join(line + "\n" for line in bundled(IFEVAL_BUNDLED).read_text().splitlines()[:5]))
    second = tmp_path / "other-judge"
    shutil.copytree(tiny_run_folder / "checkpoints" / "judge", second)
    assert main(["eval", str(tiny_run_folder), "--prompts", str(prompts), "--no-bundled", "--second-judge", str(second),
                 "--chat-judge-url", chat_server, "--chat-judge-model", "stub",
                 "--set", "eval.bootstrap=200", "--set", "eval.responses_per_prompt=2",
                 "--set", f"eval.ifeval_prompts={ruled}", "--set", "eval.ifeval_max_new_tokens=12"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "win vs previous" in out and "per category:" in out and "instruction following, 5 rule-checked" in out
    assert "second opinion judge:other-judge" in out and "second opinion chat:stub" in out
    assert "best-of-N vs random pick, the run's rounds" in out and "round 1" in out
    assert "eval: sft-1 answering: " in out and "eval: run judge scoring: " in out, "progress while it works"
    assert "turn 1 is evaluated" in captured.err
    report = json.loads((tiny_run_folder / "eval" / "model_eval.json").read_text())
    assert [m["model"] for m in report["models"]] == ["sft-1", "round-1", "round-2"]
    assert len(report["prompts"]) == 6 and report["prompts"][-1]["source"] == f"{prompts}:6"
    assert report["prompts"][0]["reference"] == "red" and report["prompts"][0]["extra"] == {
        "question_id": 2, "later_turns": ["Now sort them."]}
    assert report["judge"]["checkpoint"].endswith("checkpoints/judge")
    assert report["contamination"] == {"in_draws": [], "in_sft_seed": []}
    answers = {(a["model"], a["prompt_id"], a["sample"]): a for a in report["answers"]}
    assert len(answers) == 3 * 6 * 2 and all(0 <= a["score"] <= 10 for a in answers.values())
    keys = [(p["prompt_id"], s) for p in report["prompts"] for s in range(2)]
    assert all(answers["round-2", *k] == {**answers["sft-1", *k], "model": "round-2"} for k in keys), \
        "same weights, same prompts, same sampling seed: the same answers, judged once, the same scores"
    assert any(answers["round-1", *k]["response"] != answers["sft-1", *k]["response"] for k in keys)
    initial, first, second_row = report["models"]
    assert second_row["vs_initial"]["ties"] == 6 and second_row["vs_initial"]["rate"] == 0.5
    assert second_row["vs_initial"]["ci"] == [0.5, 0.5]
    assert second_row["vs_previous"]["rate"] == pytest.approx(1 - first["vs_initial"]["rate"])
    for model in report["models"]:
        low, high = model["mean_score_ci"]
        assert low <= model["mean_score"] <= high
    assert sorted(report["categories"]) == ["counting", "lists"]
    assert [m["prompts"] for m in report["categories"]["lists"]] == [3, 3, 3]

    assert [e["name"] for e in report["evaluators"]] == ["run judge", "ifeval", "judge:other-judge", "chat:stub"]
    ifeval = report["ifeval"]
    assert ifeval["enabled"] and len(ifeval["prompts"]) == 5 and ifeval["max_new_tokens"] == 12
    assert [m["model"] for m in ifeval["models"]] == ["sft-1", "round-1", "round-2"]
    for m in ifeval["models"]:
        assert 0 <= m["prompt_level"] <= 1 and 0 <= m["constraint_level"] <= 1
        assert m["constraint_level_ci"][0] <= m["constraint_level"] <= m["constraint_level_ci"][1]
    assert ifeval["models"][2]["vs_initial"]["rate"] == 0.5, "round-2 has sft-1's weights"
    assert len(ifeval["answers"]) == 3 * 5 * 2 and all(0 <= a["score"] <= 10 for a in ifeval["answers"])
    sizes = {p["id"]: len(p["constraints"]) for p in ifeval["prompts"]}
    assert all(len(a["met"]) == sizes[a["id"]] for a in ifeval["answers"])

    own, chat = report["second_opinions"]
    assert (own["kind"], chat["kind"], chat["model"]) == ("checkpoint", "chat", "stub")
    assert all(a["second_opinion_scores"]["judge:other-judge"] == pytest.approx(a["score"], abs=1e-4)
               for a in report["answers"]), "a second judge folder is scored in-process as the run's judge is (other " \
        "batches: padding moves the last digits)"
    assert all(a["second_opinion_scores"]["chat:stub"] == 5.0 for a in report["answers"])
    assert chat["unscored"] == 0 and chat["models"][1]["vs_initial"]["rate"] == 0.5

    bvr = report["best_vs_random"]
    assert bvr["eval"]["responses_per_prompt"] == 2 and bvr["eval"]["note"] is None
    for m in bvr["eval"]["models"]:
        assert set(m["yardsticks"]) == {"run judge", "ifeval", "judge:other-judge", "chat:stub"}
        assert m["yardsticks"]["run judge"]["vs_random"]["rate"] >= 0.5, "the judge's own pick never loses by it"
    (one,) = bvr["rounds"]["rounds"]
    assert (one["round"], one["graded_prompts"]) == (1, 3) and all(p["best_sample"] == 2 for p in one["picks"])
    assert set(one["yardsticks"]) == {"run judge", "judge:other-judge", "chat:stub"}
    assert one["yardsticks"]["run judge"]["vs_random"]["rate"] == 1.0 and bvr["rounds"]["note"] is None
    page = (tiny_run_folder / "report.html").read_text()
    assert 'id="model_eval"' in page and (tiny_run_folder / "report" / "model_eval.png").is_file(), \
        "alma eval redraws the run's report with its evaluation"


def test_per_category_rows():
    cfg = load_config("tiny", overrides=["eval.bootstrap=200"])
    models = [("sft-1", Path("a")), ("round-1", Path("b"))]
    prompts = [EvalPrompt(f"p{i}", f"q{i}", "f", category) for i, category in enumerate(["math", "math", None])]
    per_prompt = {"sft-1": [5.0, 5.0, 5.0], "round-1": [6.0, 4.0, 9.0]}
    categories = by_category(cfg, models, prompts, per_prompt)
    assert sorted(categories) == ["math", "uncategorized"]
    math_rows = categories["math"]
    assert (math_rows[1]["prompts"], math_rows[1]["mean_score"], math_rows[1]["vs_initial"]["rate"]) == (2, 5.0, 0.5)
    assert categories["uncategorized"][1]["vs_initial"]["wins"] == 1
    table = format_category_table(categories, 0.95)
    assert len(table.splitlines()) == 2 + 4 and "uncategorized" in table


class _StubChat(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/chat/completions whose rating depends on the judged response's text."""

    requests: list = []
    replies = {"good": "Rating: [[8]]", "meh": "The answer is fine. [[ 4 ]]", "odd": "I would rather not rate it.",
               "big": "[[12]]", "none": None}
    failures: dict = {}  # response text -> HTTP errors still to answer before a rating

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, self.headers.get("Authorization"), body))
        response = body["messages"][0]["content"].rsplit("[Assistant response]\n", 1)[1]
        if self.failures.get(response, 0) > 0:
            self.failures[response] -= 1
            self.send_response(503)
            self.end_headers()
            return
        content = self.replies.get(response, "[[5]]")
        data = json.dumps({"id": "x", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def chat_server():
    _StubChat.requests, _StubChat.failures = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubChat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_chat_judge_over_loopback(chat_server):
    _StubChat.failures = {"flaky": 2}
    judge = ChatJudge(chat_server, "stub-model", "secret-token", SCALE, max_tokens=16, concurrency=3,
                      policy=RetryPolicy(retries=2, backoff_s=0.0))
    pairs = [("p", "good"), ("p", "meh"), ("q", "odd"), ("q", "big"), ("q", "none"), ("r", "flaky")]
    scores = judge.score(pairs)
    assert scores[:2] == [8.0, 4.0] and all(math.isnan(s) for s in scores[2:5]) and scores[5] == 5.0, \
        "no [[N]], an out-of-range one, or no content: NaN, never a score; a 503 is retried"
    assert sorted(judge.unparsed) == ["", "I would rather not rate it.", "[[12]]"], "kept for the JSON"
    # The scale itself says "good", so the request is found by its judged response, not by a substring.
    path, auth, body = next(r for r in _StubChat.requests
                            if r[2]["messages"][0]["content"].endswith("[Assistant response]\ngood"))
    assert path == "/v1/chat/completions" and auth == "Bearer secret-token"
    assert body == {"model": "stub-model", "messages": judge_messages("p", "good", SCALE), "temperature": 0,
                    "max_tokens": 16}
    assert len(_StubChat.requests) == len(pairs) + 2


def test_chat_judge_failures_are_one_line(chat_server):
    _StubChat.failures = {"Hello!": 10}
    judge = ChatJudge(chat_server, "m", None, SCALE, policy=RetryPolicy(retries=1, backoff_s=0.0))
    with pytest.raises(JudgeClientError, match="HTTP 503.*after 2 attempts"):
        judge.check()
    assert _StubChat.requests[0][1] is None, "no token, no Authorization header"
    with pytest.raises(JudgeClientError, match="cannot connect"):
        ChatJudge("http://127.0.0.1:9/v1", "m", None, SCALE, policy=RetryPolicy(retries=0)).check()


def test_chat_reply_parsing():
    assert chat_completions_url("http://h/v1/") == "http://h/v1/chat/completions"
    assert chat_completions_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"
    assert chat_reply_score({"choices": [{"message": {"content": "[[3]] then [[9]]"}}]}) == (3.0, "[[3]] then [[9]]")
    for answer in ({}, {"choices": []}, {"choices": [{"message": {"content": ["x"]}}]}, {"choices": [{}]}):
        assert math.isnan(chat_reply_score(answer)[0])


def _flags(**given):
    args = {"second_judge": [], "chat_judge_url": None, "chat_judge_model": None, "chat_judge_token_file": None}
    return argparse.Namespace(**{**args, **given})


def test_second_opinions_are_checked_before_any_answer(chat_server, tmp_path):
    cfg = load_config("tiny")
    with pytest.raises(ConfigError, match="needs --chat-judge-model"):
        second_opinions(_flags(chat_judge_url=chat_server), cfg, None)
    with pytest.raises(ConfigError, match="not a model checkpoint folder"):
        second_opinions(_flags(second_judge=[str(tmp_path)]), cfg, None)
    token = tmp_path / "token"
    token.write_text("chat-secret\n")
    judges = second_opinions(_flags(chat_judge_url=chat_server, chat_judge_model="stub",
                                    chat_judge_token_file=str(token)), cfg, None)
    assert [(j.name, j.kind) for j in judges] == [("chat:stub", "chat")] and "independent" in judges[0].independence
    assert _StubChat.requests[0][1] == "Bearer chat-secret", "one request checks the endpoint"


def _graded_prompts():
    return [parse_prompt({"id": "a", "prompt": "A", "constraints": [{"kind": "no_commas"}, {"kind": "lowercase"}]},
                         ("f", 1)),
            parse_prompt({"id": "b", "prompt": "B", "constraints": [{"kind": "json"}]}, ("f", 2))]


def test_ifeval_summary_by_hand():
    cfg = load_config("tiny", overrides=["eval.bootstrap=200"])
    prompts = _graded_prompts()
    graded = {"sft-1": [[[True, False]], [[False]]],  # prompt a: 1 of 2 constraints; b: 0 of 1
              "round-1": [[[True, True]], [[False]]]}  # a: both; b: none
    initial, first = ifeval_summary(cfg, ["sft-1", "round-1"], prompts, graded)
    assert (initial["prompt_level"], initial["constraint_level"]) == (0.0, 1 / 3) and initial["vs_initial"] is None
    assert (first["prompt_level"], first["constraint_level"]) == (0.5, 2 / 3)
    assert (first["vs_initial"]["wins"], first["vs_initial"]["ties"], first["vs_initial"]["rate"]) == (1, 1, 0.75)
    assert first["by_family"]["case"] == {"constraints": 1, "met": 1, "rate": 1.0, "ci": [1.0, 1.0]}
    assert initial["by_family"]["format"]["rate"] == 0.0
    assert set(first["by_family"]) == {"punctuation", "case", "format"}
    for row in (initial, first):
        assert row["prompt_level_ci"][0] <= row["prompt_level"] <= row["prompt_level_ci"][1]
        assert row["constraint_level_ci"][0] <= row["constraint_level"] <= row["constraint_level_ci"][1]
    table = format_ifeval_table([initial, first], 0.95)
    assert "constraint-level" in table and "0.750" in table and "case (1) 0.000 1.000" in table


def test_best_vs_random_on_eval_answers_by_hand():
    cfg = load_config("tiny", overrides=["eval.bootstrap=200", "eval.responses_per_prompt=2"])
    prompts = _graded_prompts()
    graded = {"sft-1": [[[True, True], [False, False]], [[False], [True]]]}
    judge_ifeval = {"sft-1": [[9.0, 1.0], [2.0, 3.0]]}  # the judge picks sample 0 on a, sample 1 on b
    held_out = {"sft-1": [[5.0, 6.0], [math.nan, 4.0]]}
    second = {"chat:x": {"sft-1": [[2.0, 8.0], [1.0, 7.0]]}}
    section = best_vs_random_eval(cfg, ["sft-1"], ifeval_keys=["a", "b"], ifeval_scores=judge_ifeval,
                                  ifeval_graded=graded, keys=["p", "q"], scores=held_out, second=second)
    yard = section["models"][0]["yardsticks"]
    assert (yard["ifeval"]["best"], yard["ifeval"]["random"], yard["ifeval"]["vs_random"]["rate"]) == (1.0, 0.0, 1.0)
    # Held-out picks by the judge: p -> sample 1 (6 > 5), q -> sample 1 (the only score); the other is sample 0.
    assert (yard["run judge"]["best"], yard["run judge"]["prompts"]) == (5.0, 2)
    assert (yard["chat:x"]["best"], yard["chat:x"]["random"], yard["chat:x"]["vs_random"]["rate"]) == (7.5, 1.5, 1.0)
    one = best_vs_random_eval(load_config("tiny"), ["sft-1"], ifeval_keys=[], ifeval_scores=None, ifeval_graded=None,
                              keys=[], scores={}, second={})
    assert one["models"] == [] and "responses_per_prompt >= 2" in one["note"]


def test_best_vs_random_over_the_rounds(tmp_path):
    import pyarrow as pa
    from run_folder import commit

    cfg = load_config("tiny", overrides=["eval.bootstrap=200", "eval.selection_prompts_per_round=3"])
    run = tmp_path / "run"
    rows = [{"prompt_id": f"p{i}", "prompt": f"prompt {i}", "checkpoint": c, "sample": s,
             "response": f"{c} answer {s} to {i}" + "!" * (i + s), "score": float(s + (c == "sft-2")), "missing": 0}
            for i in range(4) for c in ("sft-1", "sft-2") for s in range(3)]
    best = [max((r for r in rows if r["prompt_id"] == f"p{i}"), key=lambda r: r["score"]) for i in range(4)]
    commit(run, "rounds/01/scores", "round 1 judge", {"part-0.parquet": pa.Table.from_pylist(rows)})
    commit(run, "rounds/01/best", "round 1 best-of-N", {"best.parquet": pa.Table.from_pylist(best)})
    commit(run, "rounds/02/scores", "round 2 judge", {"part-0.parquet": pa.Table.from_pylist(rows)})  # not finished
    rounds = round_picks(run, cfg)
    assert [(r["round"], r["prompts"], r["eligible"], len(r["pairs"])) for r in rounds] == [(1, 4, 4, 3)]
    for pick in rounds[0]["pairs"]:
        assert (pick["best"]["checkpoint"], pick["best"]["sample"]) == ("sft-2", 2)
        assert pick["random"] is not pick["best"]
    assert round_picks(run, cfg) == rounds, "seeded"
    pairs = round_pairs(rounds)
    assert len(pairs) == 6 and pairs[0] == (rounds[0]["pairs"][0]["prompt"], rounds[0]["pairs"][0]["best"]["response"])
    by_length = {pair: float(len(pair[1])) for pair in pairs}  # a second opinion that likes long answers
    section = best_vs_random_rounds(cfg, rounds, {"judge:other": by_length})
    row = section["rounds"][0]
    assert section["note"] is None and row["graded_prompts"] == 3 and row["yardsticks"]["run judge"]["best"] == 3.0
    assert row["yardsticks"]["judge:other"]["vs_random"]["rate"] == 1.0, "the best has the most '!'s"
    assert row["picks"][0]["best_checkpoint"] == "sft-2" and row["picks"][0]["best_sample"] == 2
    alone = best_vs_random_rounds(cfg, rounds, {})
    assert alone["note"] == NO_SECOND_OPINION and list(alone["rounds"][0]["yardsticks"]) == ["run judge"]
    text = format_best_vs_random({"eval": {"responses_per_prompt": 1, "models": [], "note": "n"}, "rounds": section},
                                 0.95)
    assert "round 1" in text and "judge:other" in text and "1.000" in text
