"""Held-out prompt files in users' shapes (core/eval_prompts.py): MT-Bench, AlpacaEval and {"prompt"} rows in
JSONL and Parquet map as documented, and each kind of bad row is a one-line error naming file, line and
field (exit 2 from `alma eval`)."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alma.cli import main
from alma.config import load_config
from alma.core.errors import InputError
from alma.core.eval_prompts import EvalRow, load_eval_rows

MT_BENCH = [
    {"question_id": 81, "category": "writing",
     "turns": ["Compose a short travel note about a week in a lighthouse town.", "Rewrite it as a limerick."]},
    {"question_id": 111, "category": "math", "turns": ["What is 17 times 3?", "And divided by 3 again?"],
     "reference": ["51", "17"]},
    {"question_id": "q-3", "category": "coding", "turns": ["Write a loop that prints 1 to 5 in Python."]},
]
ALPACA_EVAL = [
    {"instruction": "Name three uses for a paper clip.", "dataset": "helpful_base",
     "output": "Holding paper, resetting a device, a bookmark.", "generator": "some-model"},
    {"instruction": "Translate to French.", "input": "Good morning", "dataset": "selfinstruct"},
    {"instruction": "Give me a tip for sleeping well.", "input": ""},
]
PROMPTS = [
    {"prompt": "Why do cats purr?"},
    {"prompt": "Sum 2 and 2.", "category": "math", "reference": "4", "id": 7, "difficulty": "easy"},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mt_bench_rows_evaluate_turn_one(tmp_path):
    rows = load_eval_rows(_jsonl(tmp_path / "question.jsonl", MT_BENCH))
    assert [r.prompt for r in rows] == [q["turns"][0] for q in MT_BENCH]
    assert [r.category for r in rows] == ["writing", "math", "coding"] and {r.layout for r in rows} == {"mt-bench"}
    assert rows[0].extra == {"question_id": 81, "later_turns": ["Rewrite it as a limerick."]}
    assert rows[1].reference == "51", "the reference answer of turn 1"
    assert rows[2].extra == {"question_id": "q-3"} and rows[2].reference is None
    assert [r.line for r in rows] == [1, 2, 3]


def test_alpaca_eval_rows(tmp_path):
    rows = load_eval_rows(_jsonl(tmp_path / "alpaca_eval.jsonl", ALPACA_EVAL))
    assert rows[0] == EvalRow(1, "Name three uses for a paper clip.", "helpful_base", None,
                              {"output": "Holding paper, resetting a device, a bookmark.", "generator": "some-model"},
                              "alpaca-eval")
    assert rows[1].prompt == "Translate to French.\n\nGood morning" and rows[1].category == "selfinstruct"
    assert rows[2].prompt == "Give me a tip for sleeping well." and rows[2].category is None


def test_prompt_rows_keep_their_other_fields(tmp_path):
    rows = load_eval_rows(_jsonl(tmp_path / "mine.jsonl", PROMPTS))
    assert rows[0] == EvalRow(1, "Why do cats purr?")
    assert (rows[1].category, rows[1].reference, rows[1].extra) == ("math", "4", {"id": 7, "difficulty": "easy"})


def test_parquet_files_of_each_shape(tmp_path):
    for name, rows in (("mt", MT_BENCH[:2]), ("alpaca", ALPACA_EVAL[:1]), ("prompt", PROMPTS[1:])):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        assert [r.prompt for r in load_eval_rows(path)] == [r.prompt for r in load_eval_rows(
            _jsonl(tmp_path / f"{name}.jsonl", rows))]
    assert load_eval_rows(tmp_path / "mt.parquet")[0].extra["later_turns"] == ["Rewrite it as a limerick."]
    mixed = tmp_path / "mixed.parquet"  # one table, two layouts: each row holds the other's columns as nulls
    columns = dict.fromkeys([*PROMPTS[0], *ALPACA_EVAL[0]])
    pq.write_table(pa.Table.from_pylist([{**columns, **PROMPTS[0]}, {**columns, **ALPACA_EVAL[0]}]), mixed)
    first, second = load_eval_rows(mixed)
    assert (first.layout, first.extra, second.layout) == ("prompt", {}, "alpaca-eval")
    assert second.extra == {"output": ALPACA_EVAL[0]["output"], "generator": "some-model"}


@pytest.mark.parametrize("row, where", [
    ({"text": "x"}, ":1: expected 'prompt', 'instruction' (AlpacaEval) or 'turns' (MT-Bench)"),
    ({"prompt": "x", "instruction": "y"}, ":1: field 'prompt': the row also has 'instruction'"),
    ({"prompt": 3}, ":1: field 'prompt': expected a string"),
    ({"prompt": "  "}, ":1: field 'prompt': empty"),
    ({"prompt": "x", "category": 3}, ":1: field 'category': expected a string"),
    ({"prompt": "x", "reference": 4}, ":1: field 'reference': expected a string"),
    ({"prompt": "x", "id": [1]}, ":1: field 'id': expected an integer or a string"),
    ({"turns": []}, ":1: field 'turns': expected a non-empty list of user turns"),
    ({"turns": "What is 2+2?"}, ":1: field 'turns': expected a non-empty list"),
    ({"turns": ["fine", 2]}, ":1: field 'turns[1]': expected a string, got int"),
    ({"turns": ["fine", " "]}, ":1: field 'turns[1]': empty"),
    ({"turns": ["fine"], "reference": "4"}, ":1: field 'reference': expected a list of strings"),
    ({"turns": ["fine"], "question_id": 1.5}, ":1: field 'question_id': expected an integer or a string"),
    ({"instruction": ""}, ":1: field 'instruction': empty"),
    ({"instruction": "x", "dataset": 1}, ":1: field 'dataset': expected a string"),
    ({"instruction": "x", "output": 1}, ":1: field 'output': expected a string"),
    (["x"], ":1: expected a JSON object"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, row, where):
    f = _jsonl(tmp_path / "f.jsonl", [row])
    with pytest.raises(InputError) as e:
        load_eval_rows(f)
    assert str(e.value).startswith(str(f)) and where in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text, where", [
    ('{"prompt": "Why is the sea salty?"}\n{"instruction": "why is the sea SALTY"}\n', ":2: duplicate of line 1"),
    ('{"prompt": "a"}\n{"prompt": "b"\n', ":2: invalid JSON"),
    ("\n\n", ": no rows"),
])
def test_file_level_errors(tmp_path, text, where):
    f = tmp_path / "f.jsonl"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        load_eval_rows(f)
    assert where in str(e.value)


def test_alma_eval_refuses_a_bad_row_in_one_line(tmp_path, capsys):
    from alma.jobs.run_context import RunContext

    run = tmp_path / "run"
    RunContext(load_config("tiny", overrides=[f"out_dir={run}"]), run).open()
    bad = _jsonl(tmp_path / "question.jsonl", [MT_BENCH[0], {"question_id": 2, "turns": ["ok", 5]}])
    assert main(["eval", str(run), "--prompts", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"alma: error: {bad}:2: field 'turns[1]': expected a string, got int"]
