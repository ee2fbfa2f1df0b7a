"""Seed data in the layouts users have (docs/seed-data.md): every SFT and judge layout in JSONL, Parquet and
a datasets.save_to_disk folder, the rating-to-score rule, one line and exit 2 for each kind of bad row,
drop-invalid (counts by reason, the rejects file of a run) and `alma data`. In-process, no Ray, no model."""

import json
import os
import subprocess
import sys
from fractions import Fraction

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import alma.cluster.local
import alma.checkpoints
from alma.cli import main
from alma.config import load_config
from alma.core.errors import InputError
from alma.core.seed_formats import SeedRules, rating_score
from alma.core.seeds import file_fingerprint, load_sft, read_judge, read_sft
from alma.jobs.seed_data import write_rejects

FORMATS = ("jsonl", "parquet", "folder")
DEEP = "[" * 5000 + "]" * 5000


def _table(rows):
    """A table of every field of every row (pyarrow's from_pylist would keep the first row's fields only)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return pa.table({k: [r.get(k) for r in rows] for k in keys})


def write(tmp_path, rows, form, name="seed"):
    """`rows` as a JSONL file (a str row is written as it is), a Parquet file or a save_to_disk folder."""
    if form == "jsonl":
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    elif form == "parquet":
        path = tmp_path / f"{name}.parquet"
        pq.write_table(_table(rows), path)
    else:
        datasets = pytest.importorskip("datasets")
        datasets.disable_progress_bars()
        path = tmp_path / name
        datasets.Dataset(_table(rows)).save_to_disk(str(path))
    return path


def turn(role, content):
    return {"role": role, "content": content}


# id: (rows, what each maps to: (prompt turns, trained answer))
SFT_CASES = {
    "messages-multi-turn": (
        [{"messages": [turn("system", "Be brief."), turn("user", "Name a colour."), turn("assistant", "Red."),
                       turn("user", "Another?"), turn("assistant", "Blue.")]}],
        [([turn("system", "Be brief."), turn("user", "Name a colour."), turn("assistant", "Red."),
           turn("user", "Another?")], "Blue.")]),
    "sharegpt-with-id": (
        [{"id": "c1", "conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."},
                                        {"from": "human", "value": "How are you?"}, {"from": "gpt", "value": "Fine."}]}],
        [([turn("user", "Hi?"), turn("assistant", "Hello."), turn("user", "How are you?")], "Fine.")]),
    "alpaca": (
        [{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
         {"instruction": "Say hello.", "input": "", "output": "Hello."},
         {"instruction": "Say bye.", "input": "  ", "output": "Bye."},
         {"instruction": "Count to two.", "output": "1, 2"}],
        [([turn("user", "Add the numbers.\n\n2 and 3")], "5"), ([turn("user", "Say hello.")], "Hello."),
         ([turn("user", "Say bye.")], "Bye."), ([turn("user", "Count to two.")], "1, 2")]),
    "prompt-completion-strings": (
        [{"prompt": "Capital of France?", "completion": "Paris."}],
        [([turn("user", "Capital of France?")], "Paris.")]),
    "prompt-completion-lists": (
        [{"prompt": [turn("system", "Terse."), turn("user", "2+2?")], "completion": [turn("assistant", "4")]},
         {"prompt": [turn("user", "Hi")], "completion": [turn("assistant", "Hello."), turn("assistant", "Help?")]}],
        [([turn("system", "Terse."), turn("user", "2+2?")], "4"),
         ([turn("user", "Hi"), turn("assistant", "Hello.")], "Help?")]),
    "prompt-string-completion-list": (
        [{"prompt": "Sky colour?", "completion": [turn("assistant", "Blue.")]}],
        [([turn("user", "Sky colour?")], "Blue.")]),
    "prompt-response-with-metadata": (
        [{"prompt": "Why rain?", "response": "Clouds.", "id": 7, "source": "mine", "category": "science"}],
        [([turn("user", "Why rain?")], "Clouds.")]),
}


@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize("case", SFT_CASES)
def test_sft_layouts_map_as_documented(tmp_path, case, form):
    rows, expected = SFT_CASES[case]
    seeds = read_sft(write(tmp_path, rows, form))
    assert [(e.prompt, e.response) for e in seeds.examples] == expected
    assert seeds.rows == len(rows) and not seeds.rejects


def test_sft_extra_fields_are_ignored_and_counted(tmp_path):
    rows = [{"id": 1, "source": "a", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
            {"instruction": "i", "output": "o", "text": "### Instruction: i", "category": "x"}]
    seeds = read_sft(write(tmp_path, rows, "jsonl"))
    assert dict(seeds.layouts) == {"conversations": 1, "alpaca": 1}
    assert dict(seeds.ignored) == {"id": 1, "source": 1, "text": 1, "category": 1}


# id: (rows, rules, scores)
JUDGE_CASES = {
    "score": ([{"prompt": "p", "response": "r", "score": 7}], SeedRules(), [7]),
    # HelpSteer, 0-4: 10 * h / 4, half up; only helpfulness by default
    "helpsteer": ([{"prompt": f"p{h}", "response": "r", "helpfulness": h, "correctness": 4, "coherence": 4,
                    "complexity": 0, "verbosity": 2} for h in range(5)], SeedRules(), [0, 3, 5, 8, 10]),
    "helpsteer-two-attributes": (
        [{"prompt": "a", "response": "r", "helpfulness": 3, "correctness": 2, "coherence": 4, "complexity": 1,
          "verbosity": 1},
         {"prompt": "b", "response": "r", "helpfulness": 1, "correctness": 2, "coherence": 4, "complexity": 1,
          "verbosity": 1}],
        SeedRules(judge_attributes=("helpfulness", "correctness")), [6, 4]),  # means 2.5 -> 6.25, 1.5 -> 3.75
    # UltraFeedback, 1-5: every completion one triplet, 10 * (r - 1) / 4, half up
    "ultrafeedback": (
        [{"source": "mine", "instruction": "Name a fruit.", "models": ["m1", "m2"],
          "completions": [{"model": f"m{i}", "response": f"answer {i}", "overall_score": 6.5, "principle": "helpful",
                           "annotations": {"helpfulness": {"Rating": str(i), "Rationale": "because"},
                                           "honesty": {"Rating": "N/A", "Rationale": "unrated"}}}
                          for i in range(1, 6)]}],
        SeedRules(), [0, 3, 5, 8, 10]),
    "ultrafeedback-flat": (
        [{"prompt": "p", "response": "r", "helpfulness": 4, "honesty": 5, "instruction_following": 4,
          "truthfulness": 3}],
        SeedRules(judge_attributes=("helpfulness", "honesty", "instruction_following", "truthfulness")),
        [8]),  # mean 4 on 1..5: 7.5 -> 8
    "lone-helpfulness-explicit-scale": (
        [{"prompt": "p", "response": "r", "helpfulness": 4}], SeedRules(judge_scale=(1, 7)), [5]),
}


@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize("case", JUDGE_CASES)
def test_judge_layouts_map_as_documented(tmp_path, case, form):
    rows, rules, scores = JUDGE_CASES[case]
    seeds = read_judge(write(tmp_path, rows, form), rules)
    assert [e.score for e in seeds.examples] == scores
    if case == "ultrafeedback":
        assert [(e.prompt, e.response) for e in seeds.examples][:2] == [("Name a fruit.", "answer 1"),
                                                                         ("Name a fruit.", "answer 2")]


def test_rating_rule_is_exact_half_up():
    assert rating_score([Fraction(3)], (0, 4)) == 8  # 7.5
    assert rating_score([Fraction(1)], (0, 4)) == 3  # 2.5
    assert rating_score([Fraction(2), Fraction(3)], (1, 5)) == 4  # mean 2.5: 3.75
    assert rating_score([Fraction("3.5")], (1, 5)) == 6  # 6.25
    assert rating_score([Fraction(1), Fraction(1), Fraction(2)], (0, 4)) == 3  # 3.33
    assert rating_score([Fraction(5)], (1, 5)) == 10 and rating_score([Fraction(1)], (1, 5)) == 0


def _check(argv, capsys, fragments):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("alma: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


GOOD_SFT = {"prompt": "Fine prompt", "response": "Fine answer"}
GOOD_JUDGE = {"prompt": "Fine prompt", "response": "Fine answer", "score": 5}
UF_BAD_RATING = {"instruction": "q", "completions": [
    {"response": "a", "annotations": {"helpfulness": {"Rating": "N/A", "Rationale": "?"}}}]}

# id: (kind, the bad row, extra argv, fragments of the error line after "FILE:2:")
BAD_ROWS = {
    "alpaca-no-output": ("sft", {"instruction": "q"}, [], ["field 'output': missing"]),
    "alpaca-input-not-text": ("sft", {"instruction": "q", "input": 3, "output": "a"}, [],
                              ["field 'input': expected a string, got int"]),
    "alpaca-empty-instruction": ("sft", {"instruction": " ", "output": "a"}, [], ["field 'instruction': empty"]),
    "completion-user-role": ("sft", {"prompt": "q", "completion": [turn("user", "a")]}, [],
                             ["field 'completion[0].role'", "unknown role 'user'"]),
    "completion-empty-list": ("sft", {"prompt": "q", "completion": []}, [], ["field 'completion'", "non-empty"]),
    "prompt-list-no-user": ("sft", {"prompt": [turn("system", "s")], "completion": "a"}, [],
                            ["field 'prompt': no user turn"]),
    "completion-no-prompt": ("sft", {"completion": "a"}, [], ["field 'prompt': missing"]),
    "mixed-alpaca-messages": ("sft", {"instruction": "q", "output": "a", "messages": [turn("user", "q")]}, [],
                              ["field 'instruction': the row also has 'messages'", "one layout"]),
    "mixed-completion-response": ("sft", {"prompt": "q", "completion": "a", "response": "b"}, [],
                                  ["field 'response': the row also has 'completion'"]),
    "sft-no-layout": ("sft", {"question": "q", "answer": "a"}, [], ["expected 'messages', 'conversations'"]),
    "sft-deep-nesting": ("sft", DEEP, [], ["nested too deeply"]),
    "sft-huge-integer": ("sft", '{"prompt": ' + "9" * 5000 + "}", [], ["invalid JSON"]),
    "pairwise": ("judge", {"prompt": "q", "chosen": "a", "rejected": "b"}, [],
                 ["field 'chosen'", "pairwise", "absolute 0..10 score"]),
    "pairwise-rejected-only": ("judge", {"prompt": "q", "response": "a", "rejected": "b"}, [], ["field 'rejected'"]),
    "helpsteer-out-of-range": ("judge", {"prompt": "q", "response": "a", "helpfulness": 5, "verbosity": 1}, [],
                               ["field 'helpfulness': 5 is outside the rating scale 0..4"]),
    "helpsteer-rating-not-a-number": ("judge", {"prompt": "q", "response": "a", "helpfulness": True,
                                                "correctness": 1}, [], ["field 'helpfulness'", "got bool"]),
    "helpsteer-attribute-missing": ("judge", {"prompt": "q", "response": "a", "helpfulness": 2, "coherence": 1},
                                    ["--set", "seeds.judge_attributes=[correctness]"],
                                    ["field 'correctness': missing", "seeds.judge_attributes"]),
    "ultrafeedback-na-rating": ("judge", UF_BAD_RATING, [],
                                ["field 'completions[0].annotations.helpfulness.Rating': not a rating: 'N/A'"]),
    "ultrafeedback-no-completions": ("judge", {"instruction": "q", "completions": []}, [],
                                     ["field 'completions'", "non-empty"]),
    "ultrafeedback-no-response": ("judge", {"instruction": "q", "completions": [{"annotations": {}}]}, [],
                                  ["field 'completions[0].response': missing"]),
    "ultrafeedback-unknown-field": ("judge", {"instruction": "q", "comment": "x", "completions": []}, [],
                                    ["field 'comment': unknown field"]),
    "lone-helpfulness-needs-a-scale": ("judge", {"prompt": "q", "response": "a", "helpfulness": 3}, [],
                                       ["field 'helpfulness'", "seeds.judge_scale"]),
    "helpsteer-and-ultrafeedback": ("judge", {"prompt": "q", "response": "a", "correctness": 3, "honesty": 4}, [],
                                    ["field 'honesty'", "HelpSteer and UltraFeedback"]),
    "score-and-ratings": ("judge", {"prompt": "q", "response": "a", "score": 3, "helpfulness": 2}, [],
                          ["field 'helpfulness': the row also has 'score'"]),
    "ratings-unknown-field": ("judge", {"prompt": "q", "response": "a", "verbosity": 2, "comment": "x"}, [],
                              ["field 'comment': unknown field"]),
    "judge-deep-nesting": ("judge", DEEP, [], ["nested too deeply"]),
}


@pytest.mark.parametrize("case", BAD_ROWS)
def test_each_kind_of_bad_row_is_one_line_exit_2(case, tmp_path, capsys):
    kind, row, extra, fragments = BAD_ROWS[case]
    path = write(tmp_path, [GOOD_SFT if kind == "sft" else GOOD_JUDGE, row], "jsonl")
    _check(["check-seeds", f"--seed-{kind}", str(path), *extra], capsys, [f"{path}:2: ", *fragments])


@pytest.mark.parametrize("form", ("parquet", "folder"))
def test_bad_rows_of_tables_name_the_row_number(tmp_path, form, capsys):
    rows = [{"instruction": "fine", "input": "", "output": "ok"}, {"instruction": "bad", "input": "", "output": " "}]
    path = write(tmp_path, rows, form)
    _check(["check-seeds", "--seed-sft", str(path)], capsys, [f"{path}:2: field 'output': empty"])
    judge = write(tmp_path, [{"prompt": "p", "response": "r", "helpfulness": 2, "verbosity": 1},
                             {"prompt": "q", "response": "r", "helpfulness": 9, "verbosity": 1}], form, "judge")
    _check(["data", str(judge), "--kind", "judge"], capsys, [f"{judge}:2: field 'helpfulness'", "outside"])


def test_a_datasetdict_folder_asks_for_one_split(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    table = datasets.Dataset(_table([GOOD_SFT]))
    datasets.DatasetDict({"train": table, "test": table}).save_to_disk(str(tmp_path / "dd"))
    _check(["check-seeds", "--seed-sft", str(tmp_path / "dd")], capsys, ["several splits (test, train)", "dd/test"])
    assert len(load_sft(tmp_path / "dd" / "train")) == 1
    (tmp_path / "empty").mkdir()
    _check(["check-seeds", "--seed-sft", str(tmp_path / "empty")], capsys, ["not a datasets.save_to_disk folder"])


def test_deep_nesting_in_a_real_process(tmp_path):
    path = write(tmp_path, [GOOD_SFT, DEEP], "jsonl")
    res = subprocess.run([sys.executable, "-m", "alma.cli", "check-seeds", "--seed-sft", str(path)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [f"alma: error: {path}:2: nested too deeply to read (lists or objects "
                                               "inside each other past Python's recursion limit)"]


def _messy_sft(tmp_path):
    """9 rows: 5 good, 2 with an empty answer, a duplicate, a line that is not JSON, one nested too deeply."""
    convo = [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]
    empty = [{"from": "human", "value": "Q2?"}, {"from": "gpt", "value": ""}]
    rows = [{"conversations": convo}, {"conversations": empty}, {"prompt": "p1", "response": "r1"},
            {"conversations": convo}, '{"prompt": "p2", ', {"prompt": "p3", "response": "r3"}, {"conversations": empty},
            DEEP, {"instruction": "i", "output": "o"}, {"messages": [turn("user", "u"), turn("assistant", "a")]}]
    return write(tmp_path, rows, "jsonl", "messy")


def test_drop_invalid_counts_by_reason(tmp_path, capsys):
    path = _messy_sft(tmp_path)
    seeds = read_sft(path, SeedRules(drop_invalid=True))
    assert len(seeds.examples) == 5 and seeds.rows == 10
    assert [(r.line, r.reason) for r in seeds.rejects] == [(2, "empty"), (4, "duplicate"), (5, "invalid JSON"),
                                                            (7, "empty"), (8, "nested too deeply")]
    assert seeds.drop_text() == ("5 dropped (field 'value': empty: 2, duplicate: 1, invalid JSON: 1, "
                                 "nested too deeply: 1)")
    assert main(["check-seeds", "--seed-sft", str(path), "--drop-invalid"]) == 0
    assert capsys.readouterr().out == f"{path}: 5 SFT rows OK, {seeds.drop_text()}\n"
    with pytest.raises(InputError, match=":2: field 'value': empty"):
        load_sft(path)  # stopping at the first bad row stays the default


def test_drop_invalid_with_nothing_left_is_an_error(tmp_path, capsys):
    path = write(tmp_path, [{"prompt": "p", "chosen": "a", "rejected": "b"}] * 2, "jsonl")
    _check(["check-seeds", "--seed-judge", str(path), "--drop-invalid"], capsys,
           ["no valid rows: 2 dropped (field 'chosen': pairwise data: 2)"])


def test_drop_invalid_in_a_table_drops_one_row(tmp_path):
    rows = [{"instruction": "q", "completions": [{"response": "a", "annotations": {"helpfulness": {"Rating": "5"}}}]},
            {"instruction": "q2", "completions": [{"response": "b", "annotations": {"helpfulness": {"Rating": "N/A"}}},
                                                  {"response": "c", "annotations": {"helpfulness": {"Rating": "2"}}}]}]
    seeds = read_judge(write(tmp_path, rows, "parquet"), SeedRules(drop_invalid=True))
    assert [(e.response, e.score) for e in seeds.examples] == [("a", 10)]
    assert seeds.drop_text() == "1 dropped (field 'completions[*].annotations.helpfulness.Rating': not a rating: 1)"


def test_rejects_file_holds_line_field_reason_and_row(tmp_path):
    seeds = read_sft(_messy_sft(tmp_path), SeedRules(drop_invalid=True))
    path = write_rejects(tmp_path / "run", "sft", seeds)
    assert path == tmp_path / "run" / "seeds" / "rejects-sft.jsonl"
    rejects = [json.loads(line) for line in path.read_text().splitlines()]
    assert rejects[0] == {"line": 2, "field": "value", "reason": "empty",
                          "error": f"{seeds.path}:2: field 'value': empty",
                          "row": {"conversations": [{"from": "human", "value": "Q2?"}, {"from": "gpt", "value": ""}]}}
    assert rejects[2]["row"] == '{"prompt": "p2", ' and rejects[4]["row"] == DEEP  # not JSON: the line's text
    assert not list(path.parent.glob(".*")), "written atomically: no temporary file left"


@pytest.fixture
def no_cluster(monkeypatch, tmp_path, alma_cache):
    """`alma run` up to the point where it would start Ray: there it stops (no Ray, no model is loaded)."""
    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALMA_CACHE", str(alma_cache))
    monkeypatch.setattr(alma.checkpoints, "resolve_model", lambda *a, **k: tmp_path)
    monkeypatch.setattr(alma.cluster.local, "start_ray", stop)
    return Stop


def test_run_writes_rejects_and_says_so_in_one_line(tmp_path, no_cluster, capsys):
    sft = _messy_sft(tmp_path)
    with pytest.raises(no_cluster):
        main(["run", "--preset", "tiny", "--out", str(tmp_path / "run"), "--seed-sft", str(sft), "--drop-invalid"])
    out = capsys.readouterr().out
    rejects = (tmp_path / "run" / "seeds" / "rejects-sft.jsonl").resolve()
    said = [line.split("] ", 1)[1] for line in out.splitlines() if "] seed " in line]
    assert said == [f"seed sft: 10 rows, 5 dropped (field 'value': empty: 2, duplicate: 1, invalid JSON: 1, "
                    f"nested too deeply: 1), rejects in {rejects}",
                    f"seed judge: 48 rows, none dropped, rejects in {rejects.with_name('rejects-judge.jsonl')}"]
    assert len(rejects.read_text().splitlines()) == 5
    assert json.loads((tmp_path / "run" / "seeds.json").read_text())["sft"]["rows"] == 5


def test_run_without_drop_invalid_writes_nothing(tmp_path, no_cluster, capsys):
    sft = _messy_sft(tmp_path)
    assert main(["run", "--preset", "tiny", "--out", str(tmp_path / "run"), "--seed-sft", str(sft)]) == 2
    assert f"{sft}:2: field 'value': empty" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_data_shows_layouts_fields_scores_and_drops(tmp_path, capsys):
    rows = [{"prompt": f"p{i}", "response": "r", "helpfulness": h, "verbosity": 2} for i, h in enumerate((0, 3, 3, 4))]
    path = write(tmp_path, [*rows, {"prompt": "q", "chosen": "a", "rejected": "b"}], "jsonl")
    assert main(["data", str(path), "--kind", "judge", "--json", "--drop-invalid"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "JSONL" and info["rows"] == 5 and info["examples"] == 4
    assert info["layouts"] == {"helpsteer": 4}
    assert info["fields"] == {"chosen": 1, "helpfulness": 4, "prompt": 5, "rejected": 1, "response": 4, "verbosity": 4}
    assert info["scores"] == {**{str(s): 0 for s in range(11)}, "0": 1, "8": 2, "10": 1}
    assert info["ratings"] == {"attributes": ["helpfulness"], "scales": {"helpsteer": [0, 4]}}
    assert info["dropped"] == {"rows": 1, "by_reason": {"field 'chosen': pairwise data": 1}}
    assert info["samples"][0] == {"prompt": "p0", "response": "r", "score": 0}
    assert main(["data", str(path), "--kind", "judge", "--drop-invalid"]) == 0
    text = capsys.readouterr().out
    for fragment in ("(JSONL): 5 judge rows", "HelpSteer ratings 4", "mean of helpfulness on 0..4 (helpsteer)",
                     "4 judge triplets", "dropped   1 (field 'chosen': pairwise data: 1)", "example   score 0: p0 -> r"):
        assert fragment in text, (fragment, text)


def test_data_on_sft_folder_truncates_examples(tmp_path, capsys):
    long = "word " * 100
    path = write(tmp_path, [{"id": "x", "conversations": [{"from": "human", "value": long},
                                                          {"from": "gpt", "value": "ok"}]}], "folder")
    assert main(["data", str(path), "--kind", "sft"]) == 0
    text = capsys.readouterr().out
    assert "(datasets folder): 1 SFT rows" in text and "ignored   id 1" in text
    example = next(line for line in text.splitlines() if line.startswith("  example"))
    assert example.endswith("... -> ok") and len(example) < 120


def test_data_on_eval_prompts(tmp_path, capsys):
    pytest.importorskip("alma.core.eval_prompts", reason="alma.core.eval_prompts (load_eval_rows) is not there yet")
    rows = [{"question_id": 1, "category": "writing", "turns": ["Write a haiku about rain.", "Now about snow."]},
            {"prompt": "Explain tides briefly.", "category": "science", "reference": "The moon pulls the sea."}]
    path = write(tmp_path, rows, "jsonl")
    assert main(["data", str(path), "--kind", "eval", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == 2 and info["categories"] == {"writing": 1, "science": 1} and info["references"] == 1
    assert info["samples"][0]["prompt"] == "Write a haiku about rain."
    _check(["data", str(path), "--kind", "eval", "--drop-invalid"], capsys, ["--drop-invalid applies to seed files"])


def test_seeds_config_is_typed_and_leaves_old_hashes_alone(capsys):
    default, dropping = load_config("tiny"), load_config("tiny", overrides=["seeds.drop_invalid=true"])
    assert "seeds" not in default._results_view(), "at its defaults, a run made before the section keeps its hash"
    assert default.fingerprint() != dropping.fingerprint()
    assert load_config("tiny", overrides=["seeds.judge_scale=[1,7]"]).seeds.rules() == SeedRules(judge_scale=(1, 7))
    _check(["check-seeds", "--set", "seeds.judge_scale=[4,0]"], capsys, ["'seeds.judge_scale'", "min < max"])
    _check(["check-seeds", "--set", "seeds.judge_attributes=[harmlessness]"], capsys,
           ["'seeds.judge_attributes'", "unknown rating 'harmlessness'"])


def test_fingerprint_of_a_folder_follows_its_files(tmp_path):
    a = write(tmp_path, [GOOD_SFT], "folder", "a")
    b = write(tmp_path, [GOOD_SFT], "folder", "b")
    c = write(tmp_path, [{"prompt": "other", "response": "row"}], "folder", "c")
    assert file_fingerprint(a) == file_fingerprint(b) != file_fingerprint(c)


def test_jsonl_lines_are_split_on_newlines_only(tmp_path):
    path = tmp_path / "s.jsonl"
    # A byte-order mark, a \r\n line end, and U+2028 inside a string (str.splitlines() would cut there).
    path.write_bytes('\ufeff{"prompt": "a\u2028b", "response": "r"}\r\n{"prompt": "c", "response": "d"}\n'.encode())
    assert [e.user_prompt for e in load_sft(path)] == ["a\u2028b", "c"]
