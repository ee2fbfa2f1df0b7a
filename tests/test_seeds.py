"""Seed loading: the three chat layouts, JSONL and Parquet, and one-line errors for bad rows."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alma.core.errors import InputError
from alma.core.seeds import bundled, load_judge, load_sft


def write_jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_bundled_seeds_load():
    sft, judge = load_sft(bundled("sft.jsonl")), load_judge(bundled("judge.jsonl"))
    assert len(sft) >= 24 and len(judge) >= 24
    assert {j.score for j in judge} == set(range(11))


def test_three_sft_layouts_agree(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]},
        {"conversations": [{"from": "human", "value": "Yo?"}, {"from": "gpt", "value": "Hey."}]},
        {"prompt": "Sup?", "response": "Not much."},
    ]
    sft = load_sft(write_jsonl(tmp_path / "s.jsonl", rows))
    assert [(e.user_prompt, e.response) for e in sft] == [("Hi?", "Hello."), ("Yo?", "Hey."), ("Sup?", "Not much.")]
    assert sft[1].prompt == [{"role": "user", "content": "Yo?"}]


def test_parquet_seed(tmp_path):
    path = tmp_path / "j.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b"], "response": ["x", "y"], "score": [3, 10]}), path)
    assert [j.score for j in load_judge(path)] == [3, 10]


@pytest.mark.parametrize("row, line, field", [
    ('{"prompt": "p", "response": "r", "score": 11}', 2, "score"),
    ('{"prompt": "p", "response": "r", "score": 2.5}', 2, "score"),
    ('{"prompt": "p", "response": "r", "score": "7"}', 2, "score"),
    ('{"prompt": "", "response": "r", "score": 2}', 2, "prompt"),
    ('{"prompt": "p", "score": 2}', 2, "response"),
    ('{"prompt": "p", "response": "r"}', 2, "score"),
    ('{"prompt": "p", "response": "r", "score": 2, "extra": 1}', 2, "extra"),
    ('{"prompt": "p", "response": 5, "score": 2}', 2, "response"),
    ('{"prompt": "p", "response": "r", "score": true}', 2, "score"),
    ('{"prompt": "p", "response": "r"', 2, None),
    ('["not", "an", "object"]', 2, None),
])
def test_bad_judge_rows_name_line_and_field(tmp_path, row, line, field):
    path = write_jsonl(tmp_path / "j.jsonl", ['{"prompt": "ok", "response": "fine", "score": 5}', row])
    with pytest.raises(InputError) as e:
        load_judge(path)
    assert (e.value.line, e.value.field) == (line, field)
    assert str(e.value).startswith(f"{path}:{line}:")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("row, field", [
    ({"messages": [{"role": "user", "content": "q"}]}, "messages"),
    ({"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]}, "messages[0].role"),
    ({"messages": [{"role": "assistant", "content": "a"}]}, "messages"),
    ({"messages": []}, "messages"),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}]}, "value"),
    ({"prompt": "q"}, "response"),
    ({"text": "q"}, None),
])
def test_bad_sft_rows(tmp_path, row, field):
    path = write_jsonl(tmp_path / "s.jsonl", [row])
    with pytest.raises(InputError) as e:
        load_sft(path)
    assert e.value.line == 1 and e.value.field == field


def test_duplicates_empty_and_encoding(tmp_path):
    dup = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "response": "b"}] * 2)
    with pytest.raises(InputError, match="duplicate of line 1"):
        load_sft(dup)
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match="no rows"):
        load_sft(empty)
    latin = tmp_path / "l.jsonl"
    latin.write_bytes(b'{"prompt": "a", "response": "b"}\n{"prompt": "caf\xe9", "response": "b"}\n')
    with pytest.raises(InputError) as e:
        load_sft(latin)
    assert e.value.line == 2 and "UTF-8" in str(e.value)
    with pytest.raises(InputError, match="file not found"):
        load_sft(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="unsupported file type"):
        load_sft(write_jsonl(tmp_path / "x.csv", ["a,b"]))
