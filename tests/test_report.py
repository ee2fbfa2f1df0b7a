"""`alma report RUN`: the numbers (best-of-N curve, per-round statistics, checkpoint wins, throughput) and
the files (report.html self-contained, PNG plots). The finished tiny run of test_e2e.py is checked with
`check_finished_run`, called from there so that the suite runs the recipe once."""

import itertools
import json
import math
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from run_folder import make_run

from alma.cli import main
from alma.core import report_data as rd
from alma.commands.report import write_report
from alma.commands.report_plots import PLOTS
from alma.jobs.throughput import count_tokens, run_throughput
from alma.core.tables import read_table
from alma.commands.status import run_status

DATA = re.compile(r'<script type="application/json" id="alma-report-data">(.*?)</script>', re.S)


def embedded_data(page: Path) -> dict:
    return json.loads(DATA.search(page.read_text(encoding="utf-8")).group(1))


def test_expected_best_is_the_mean_max_over_every_subset():
    scores = [3.2, 1.0, 7.5, 7.5, 2.2, 9.1, 0.0, 4.4]
    curve = rd.expected_best(scores)
    for n in range(1, len(scores) + 1):
        brute = np.mean([max(c) for c in itertools.combinations(scores, n)])
        assert curve[n - 1] == pytest.approx(brute, abs=1e-12)
    assert curve[0] == pytest.approx(np.mean(scores)) and curve[-1] == max(scores)
    assert np.all(np.diff(curve) >= -1e-12), "the best of more is never worse"
    weights = rd.best_of_n_weights(200)
    assert np.allclose(weights.sum(1), 1.0) and np.all(weights >= 0), "a distribution over which one is the max"


def test_curve_averages_prompts_and_leaves_out_unscored_responses():
    curve = rd.best_of_n_curve({"a": [1.0, 2.0, 3.0], "b": [5.0, math.nan, 7.0], "c": [math.nan]})
    assert curve["n"] == [1, 2, 3] and curve["prompts"] == [2, 2, 1]
    assert curve["expected_best"] == pytest.approx([(2 + 6) / 2, (8 / 3 + 7) / 2, 3.0])
    assert rd.best_of_n_curve({}) == {"n": [], "expected_best": [], "prompts": []}


def test_statistics_histogram_and_checkpoint_contribution():
    d = rd.describe([1.0, 2.0, math.nan, 3.0])
    assert (d["count"], d["mean"], d["median"], d["std"]) == (3, 2.0, 2.0, 1.0)
    assert d["sem"] == pytest.approx(1 / math.sqrt(3))
    assert math.isnan(rd.describe([])["mean"]) and math.isnan(rd.describe([4.0])["sem"])
    h = rd.histogram([0.0, 0.2, 5.0, 9.99, 10.0, math.nan])
    assert len(h["counts"]) == rd.HISTOGRAM_BINS and h["edges"][0] == 0 and h["edges"][-1] == 10
    assert sum(h["counts"]) == 5 and h["counts"][0] == 2 and h["counts"][-1] == 2
    scores = [{"checkpoint": "sft-1", "score": 2.0}, {"checkpoint": "sft-1", "score": 4.0},
              {"checkpoint": "sft-2", "score": 9.0}, {"checkpoint": "sft-2", "score": 1.0}]
    c = rd.checkpoint_contribution(scores, [{"checkpoint": "sft-2", "score": 9.0}])
    assert c == {"sft-1": {"responses": 2, "mean_score": 3.0, "wins": 0, "response_share": 0.5, "win_share": 0.0},
                 "sft-2": {"responses": 2, "mean_score": 5.0, "wins": 1, "response_share": 0.5, "win_share": 1.0}}
    assert [rd.timing_group(k) for k in ("train", "responses", "scores", "distill-labels", "pool-clusters")] == \
        ["train", "generate", "judge", "judge", "other"]


def check_report_matches_parquet(run: Path, page: Path) -> dict:
    """The per-round numbers in report.html are those of the round's Parquet files; returns the data."""
    html = page.read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="(?!data:)', html), "self-contained: nothing loaded from elsewhere"
    data = embedded_data(page)
    rounds = sorted(int(p.name) for p in (run / "rounds").iterdir() if (p / "scores" / "manifest.json").exists())
    assert [r["round"] for r in data["rounds"]] == rounds
    for r in data["rounds"]:
        folder = run / "rounds" / f"{r['round']:02d}"
        scores = read_table(folder / "scores").to_pylist()
        finite = [s["score"] for s in scores if not math.isnan(s["score"])]
        best = pq.read_table(folder / "best" / "best.parquet").to_pylist()
        assert (r["responses"], r["unscored"], r["prompts"]) == (
            len(scores), len(scores) - len(finite), len({s["prompt_id"] for s in scores}))
        assert r["all"]["mean"] == pytest.approx(float(np.mean(finite)), abs=1e-12)
        assert r["best"]["mean"] == pytest.approx(float(np.mean([b["score"] for b in best])), abs=1e-12)
        assert f"<td>{r['all']['mean']:.3f}</td>" in html and f"<td>{r['best']['mean']:.3f}</td>" in html
        assert sum(r["histogram_all"]["counts"]) == len(finite)
        assert {k: v["wins"] for k, v in r["checkpoints"].items() if v["wins"]} == \
            dict(Counter(b["checkpoint"] for b in best))
        per_prompt: dict[str, list[float]] = {}
        for s in scores:
            if not math.isnan(s["score"]):
                per_prompt.setdefault(s["prompt_id"], []).append(s["score"])
        n = max(len(v) for v in per_prompt.values())
        curve = r["best_of_n"]["expected_best"]
        assert r["best_of_n"]["n"] == list(range(1, n + 1))
        assert curve[0] == pytest.approx(float(np.mean([np.mean(v) for v in per_prompt.values()])), abs=1e-9)
        if {len(v) for v in per_prompt.values()} == {n}:  # E[best of all N] is the mean of the chosen ones
            assert curve[-1] == pytest.approx(r["best"]["mean"], abs=1e-9)
    drawn = [name for name in PLOTS if data["eval"] or name != "model_eval.png"]  # that one needs `alma eval`
    for name in drawn:
        assert (page.parent / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert html.count("data:image/png;base64,") == len(drawn)
    return data


def test_report_of_a_run_folder(tmp_path):
    run = tmp_path / "run"
    scores = make_run(run, rounds=2, k=3, n=6)
    out = tmp_path / "out"
    paths = write_report(run, out)
    assert paths[0] == out / "report.html"
    assert sorted(p.name for p in paths[1:]) == sorted(set(PLOTS) - {"model_eval.png"}), "no eval yet"
    data = check_report_matches_parquet(run, out / "report.html")
    r2 = data["rounds"][1]
    assert r2["unscored"] == 1 and r2["all"]["max"] <= 10, "NaN left out; the errors table is not a score"
    assert r2["best_of_n"]["prompts"] == [3, 3, 3, 3, 3, 2], "the prompt with a NaN has 5 scores, not 6"
    assert r2["split"] == {"sft-1": 2, "sft-2": 2, "latest": 2}
    assert r2["diversity"]["draw"]["clusters_covered"] == 3
    assert [s["label"] for s in data["stages"]][-1] == "train round-2"
    assert len(scores[1]) == 18


def _comparison(rate: float, wins: int, losses: int, ties: int) -> dict:
    return {"rate": rate, "ci": [rate - 0.1, rate + 0.1], "wins": wins, "losses": losses, "ties": ties,
            "unscored": 0, "prompts": wins + losses + ties}


def test_the_report_shows_alma_eval_per_round(tmp_path):
    """With eval/model_eval.json (what `alma eval` writes) the report gains its plot and table, with the
    JSON's numbers; without one it has neither (test_report_of_a_run_folder)."""
    run = tmp_path / "run"
    make_run(run, rounds=2, k=3, n=6)
    models = [{"model": "sft-1", "round": 0, "mean_score": 5.0, "mean_score_ci": [4.5, 5.5], "vs_initial": None,
               "vs_previous": None},
              {"model": "round-1", "round": 1, "mean_score": 5.5, "mean_score_ci": [5.0, 6.0],
               "vs_initial": _comparison(0.625, 5, 2, 1), "vs_previous": _comparison(0.625, 5, 2, 1)},
              {"model": "round-2", "round": 2, "mean_score": 5.25, "mean_score_ci": [4.75, 5.75],
               "vs_initial": _comparison(0.5, 3, 3, 2), "vs_previous": _comparison(0.375, 2, 4, 2)}]
    (run / "eval").mkdir()
    (run / "eval" / "model_eval.json").write_text(json.dumps({
        "training": "dpo", "baseline": "sft-1", "judge": {"checkpoint": "j"}, "models": models,
        "prompts": [{"prompt_id": f"e{i}"} for i in range(8)], "answers": []}))
    paths = write_report(run)
    assert sorted(p.name for p in paths[1:]) == sorted(PLOTS)
    data = check_report_matches_parquet(run, run / "report.html")
    ev = data["eval"]
    assert (ev["training"], ev["prompts"], ev["judge"]) == ("dpo", 8, "j")
    assert [m["mean_score"] for m in ev["models"]] == [5.0, 5.5, 5.25]
    assert ev["models"][2]["vs_previous"] == _comparison(0.375, 2, 4, 2)
    section = (run / "report.html").read_text().split('id="model_eval"')[1].split("</section>")[0]
    assert "<td>round-2</td><td>5.250</td><td>[4.750, 5.750]</td><td>0.500</td>" in section
    assert "<td>3-3-2</td><td>0.375</td><td>[0.275, 0.475]</td>" in section


def test_a_run_with_no_round_yet_reports_its_stages(tmp_path, capsys):
    run = tmp_path / "run"
    make_run(run, rounds=2, done_rounds=0)
    assert main(["report", str(run)]) == 0
    assert "report.html" in capsys.readouterr().out
    data = embedded_data(run / "report.html")
    assert data["rounds"] == []
    assert [s["label"] for s in data["stages"]] == ["train sft-1", "train sft-2", "prompt pool"]
    assert sorted(p.name for p in (run / "report").iterdir()) == ["stage_timings.png"]
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_throughput_counts_tokens_with_the_runs_tokenizer(tmp_path, tiny_model):
    from tokenizers import Tokenizer

    run = tmp_path / "run"
    scores = make_run(run, rounds=2, k=3, n=6)
    shutil.copy(tiny_model / "tokenizer.json", run / "checkpoints" / "sft-1" / "tokenizer.json")
    tokenizer = Tokenizer.from_file(str(tiny_model / "tokenizer.json"))
    throughput = run_throughput(run)
    responses = throughput["round 1 responses"]
    exact = sum(len(tokenizer.encode(s["response"], add_special_tokens=False).ids) for s in scores[1])
    assert (responses["tokens"], responses["tokens_of"], responses["rows"]) == (exact, "generated", 18)
    assert responses["tokens_per_s"] == pytest.approx(exact / responses["seconds"])
    judged = throughput["round 2 judge"]
    assert judged["tokens_of"] == "judged" and judged["tokens"] > exact
    train = throughput["train round-1"]
    assert (train["tokens"], train["tokens_per_s"], train["tokens_of"]) == (6000, 6000 / 2.5, "trained")
    assert (train["rows_per_s"], train["seconds"], train["train_seconds"]) == (43 / 30, 30.0, 2.5)
    assert responses["tokens_per_s"] == exact / 10.0
    assert throughput["round 1 draw"]["tokens"] is None
    files = sorted((run / "rounds" / "01" / "responses").glob("*.parquet"))
    sampled = count_tokens(tokenizer, files, ["response"], sample=5)
    assert sampled != exact and abs(sampled - exact) < 0.5 * exact, "an even sample, scaled to every row"


def check_finished_run(run: Path) -> None:
    """The tiny end-to-end run ended by writing its report; summary.json holds its throughput."""
    check_report_matches_parquet(run, run / "report.html")
    summary = json.loads((run / "summary.json").read_text())
    for r in (1, 2):
        responses = summary["throughput"][f"round {r} responses"]
        assert responses["rows"] == summary["rounds"][r - 1]["responses"] and responses["rows_per_s"] > 0
        assert responses["tokens_of"] == "generated" and responses["tokens_per_s"] > 0
        assert summary["throughput"][f"round {r} judge"]["tokens_per_s"] > 0
        train = summary["throughput"][f"train round-{r}"]
        assert train["tokens_of"] == "trained" and train["tokens"] > 0 and train["tokens_per_s"] > 0
    data = embedded_data(run / "report.html")
    for r, row in zip(data["rounds"], summary["rounds"]):
        assert r["all"]["mean"] == pytest.approx(row["mean_score_all"]) and \
            r["best"]["mean"] == pytest.approx(row["mean_score_best"])
    status = run_status(run)
    assert (status.state, status.rounds_done) == ("finished", 2)
    assert not (run / "progress.json").exists() or json.loads((run / "progress.json").read_text())["state"] == "idle"


def test_deployment_metrics_time_every_call_and_count_its_work():
    from alma.actors.metrics import RequestMetrics, checkpoint_tag

    assert [checkpoint_tag(c) for c in ("/runs/x/checkpoints/sft-1", "/runs/x/checkpoints/round-2/", "judge")] == \
        ["sft-1", "round-2", "judge"]
    metrics = RequestMetrics("generator", ("prompts", "completions"))  # Ray checks the names and tags here
    with metrics.request("/runs/x/checkpoints/sft-1") as count:
        count(prompts=8, completions=48)
        count(prompts=0)  # nothing served is no increment (Ray's counters refuse 0)
    with pytest.raises(RuntimeError), metrics.request("/runs/x/checkpoints/sft-2"):
        raise RuntimeError("replica failed")
    with pytest.raises(KeyError):
        with metrics.request("sft-1") as count:
            count(tokens=3)  # not a unit this deployment counts


def test_a_report_that_cannot_be_written_never_fails_the_run(tmp_path, capsys):
    from types import SimpleNamespace

    from alma.commands.report import finish_run_report

    ctx = SimpleNamespace(run_dir=tmp_path / "gone", remote=None, location=str(tmp_path / "gone"))
    assert finish_run_report(ctx) is None
    assert "report: not written (RunStateError" in capsys.readouterr().out
    run = tmp_path / "run"
    make_run(run, rounds=1)
    assert finish_run_report(SimpleNamespace(run_dir=run, remote=None, location=str(run))) == run / "report.html"


def test_the_page_escapes_what_it_shows():
    """The page is a template with autoescaping: a run folder or stage named like markup stays text."""
    from alma.commands.report_html import render_html

    data = {"rounds": [], "stages": [{"label": "<b>x</b>", "rows": 1, "seconds": 1.0, "rows_per_s": 1.0}],
            "throughput": {}, "eval": None, "note": "</script><script>alert(1)</script>"}
    page = render_html(data, {}, [("run", "runs/<img src=x onerror=alert(1)>")])
    assert "<img src=x" not in page and "runs/&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Nothing committed yet." in page
    assert json.loads(DATA.search(page).group(1).replace("<\\/", "</"))["note"] == data["note"]
    assert page.count("</script>") == 1, "the JSON cannot close its script element"


def test_the_timeline_shows_overlapping_stages_and_shortens_pauses():
    from alma.core.report_data import stage_timings, timeline

    t0 = 1_800_000_000.0
    stages = [  # sft-1 and the judge ran at once; the run was stopped for a day before the pool
        {"label": "train sft-1", "seconds": 30.0, "committed_at": t0 + 30},
        {"label": "train judge", "seconds": 40.0, "committed_at": t0 + 41},  # started 1 s after sft-1
        {"label": "prompt pool", "seconds": 10.0, "committed_at": t0 + 86_400 + 10},
        {"label": "old stage", "seconds": 5.0, "committed_at": None},
    ]
    assert timeline(stages) == [0.0, 1.0, 41.0 + 60.0, 101.0 + 10.0]
    ordered = stage_timings(stages[:3])
    assert [s["label"] for s in ordered] == ["train sft-1", "train judge", "prompt pool"], "commit order"
    assert [s["start_s"] for s in ordered] == [0.0, 1.0, 101.0]
