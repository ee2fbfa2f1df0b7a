"""`alma eval`: held-out prompt files checked with file:line errors, the per-round report on a run folder of
tiny models (answers, judge scores, win rates, intervals, JSON), a served judge over HTTP, and that no
stage of a run reads the held-out prompts."""

import json
import math
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from alma.cli import main
from alma.config import load_config
from alma.core.errors import InputError
from alma.core.prompts import normalize
from alma.core.seeds import bundled, load_judge, load_prompts, load_sft
from alma.jobs.model_eval import BUNDLED, format_table, load_eval_prompts, score_with_endpoint, summarize

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_prompts_are_held_out():
    prompts = {normalize(p) for _, p in load_prompts(bundled(BUNDLED))}
    assert len(prompts) == 24
    seen = {normalize(e.user_prompt) for e in load_sft(bundled("sft.jsonl"))}
    seen |= {normalize(e.prompt) for e in load_judge(bundled("judge.jsonl"))}
    assert not prompts & seen, "no eval prompt is a seed prompt"
    readers = [p.relative_to(ROOT) for folder in ("alma", "core", "engines", "actors", "jobs", "cluster")
               for p in (ROOT / folder).rglob("*.py") if BUNDLED in p.read_text() or "eval_prompts" in p.read_text()]
    assert readers == [Path("jobs/model_eval.py")], "only `alma eval` reads the held-out prompts"


@pytest.mark.parametrize("text, where", [
    ('{"prompt": "fine"}\n{"prompt": 3}\n', "f.jsonl:2: field 'prompt': expected a string"),
    ('{"prompt": "fine"}\n\n{"prompt": "  "}\n', "f.jsonl:3: field 'prompt': empty"),
    ('{"prompt": "a"}\n{"prompt": "b", "id": 1}\n', "f.jsonl:2: field 'id': unknown field"),
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
    config, committed sft-1, round-1 (other weights), round-2 (sft-1's weights again) and judge."""
    from alma.jobs.run_context import RunContext
    from safetensors.numpy import load_file, save_file

    run = tmp_path_factory.mktemp("eval") / "run"
    ctx = RunContext(load_config("tiny", overrides=[f"out_dir={run}", "rounds=2"]), run)
    ctx.open()
    for name in ("sft-1", "round-1", "round-2", "judge"):
        ctx.stage(ctx.checkpoint_dir(name), name, lambda w: shutil.copytree(tiny_model, w.path, dirs_exist_ok=True))
    weights = run / "checkpoints" / "round-1" / "model.safetensors"
    rng = np.random.default_rng(0)
    save_file({k: v + rng.normal(0, 0.05, v.shape).astype(v.dtype) for k, v in load_file(weights).items()},
              weights, metadata={"format": "pt"})
    return run


@pytest.mark.slow
def test_eval_reports_every_round(tiny_run_folder, tmp_path, capsys):
    prompts = tmp_path / "mine.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Name {n} colours."}) + "\n" for n in range(2, 8)))
    assert main(["eval", str(tiny_run_folder), "--prompts", str(prompts), "--no-bundled",
                 "--set", "eval.bootstrap=200", "--set", "eval.responses_per_prompt=2"]) == 0
    assert "win vs previous" in capsys.readouterr().out
    report = json.loads((tiny_run_folder / "eval" / "model_eval.json").read_text())
    assert [m["model"] for m in report["models"]] == ["sft-1", "round-1", "round-2"]
    assert len(report["prompts"]) == 6 and report["prompts"][-1]["source"] == f"{prompts}:6"
    assert report["judge"]["checkpoint"].endswith("checkpoints/judge")
    assert report["contamination"] == {"in_draws": [], "in_sft_seed": []}
    answers = {(a["model"], a["prompt_id"], a["sample"]): a for a in report["answers"]}
    assert len(answers) == 3 * 6 * 2 and all(0 <= a["score"] <= 10 for a in answers.values())
    keys = [(p["prompt_id"], s) for p in report["prompts"] for s in range(2)]
    assert all(answers["round-2", *k] == {**answers["sft-1", *k], "model": "round-2"} for k in keys), \
        "same weights, same prompts, same sampling seed: the same answers, judged once, the same scores"
    assert any(answers["round-1", *k]["response"] != answers["sft-1", *k]["response"] for k in keys)
    initial, first, second = report["models"]
    assert second["vs_initial"]["ties"] == 6 and second["vs_initial"]["rate"] == 0.5
    assert second["vs_initial"]["ci"] == [0.5, 0.5]
    assert second["vs_previous"]["rate"] == pytest.approx(1 - first["vs_initial"]["rate"])
    for model in report["models"]:
        low, high = model["mean_score_ci"]
        assert low <= model["mean_score"] <= high
    page = (tiny_run_folder / "report.html").read_text()
    assert 'id="model_eval"' in page and (tiny_run_folder / "report" / "model_eval.png").is_file(), \
        "alma eval redraws the run's report with its evaluation"
