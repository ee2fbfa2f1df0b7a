"""Sizing and ordering of generation calls (core.batching) and the judge stage's input blocks."""

from __future__ import annotations

import pyarrow as pa
import pytest

from alma.core.batching import order_requests
from alma.core.selection import split_n
from alma.jobs.streaming import _blocks


def _round_rows(prompts: int, split: dict[str, int]) -> list[dict]:
    """A round's responses-stage rows: prompt by prompt, one row per checkpoint with its n."""
    return [{"prompt_id": f"p{i}", "checkpoint_path": f"/ck/{name}", "n": n}
            for i in range(prompts) for name, n in split.items()]


def _calls(rows: list[dict], size: int) -> list[dict[str, int]]:
    """Samples per checkpoint in each call of `size` consecutive rows."""
    calls = []
    for i in range(0, len(rows), size):
        per: dict[str, int] = {}
        for row in rows[i : i + size]:
            per[row["checkpoint_path"]] = per.get(row["checkpoint_path"], 0) + row["n"]
        calls.append(per)
    return calls


def test_a_split_call_carries_as_many_samples_as_an_unsplit_one():
    single = _round_rows(48, {"sft-1": 6})
    split = _round_rows(48, split_n(6, {"sft-1": 1.0, "sft-2": 1.0, "latest": 1.0}))
    one, one_size = order_requests(single, "checkpoint_path", "prompt_id", 8)
    three, three_size = order_requests(split, "checkpoint_path", "prompt_id", 8)
    assert (one_size, three_size) == (8, 24)
    assert [sum(c.values()) for c in _calls(one, one_size)] == [48] * 6
    # Every call is one checkpoint's: one engine batch of 48 samples, not three of 16 (or of 6).
    calls = _calls(three, three_size)
    assert [len(c) for c in calls] == [1] * 6 and [sum(c.values()) for c in calls] == [48] * 6
    assert sorted(k for c in calls for k in c) == ["/ck/latest"] * 2 + ["/ck/sft-1"] * 2 + ["/ck/sft-2"] * 2


def test_ordering_is_stable_and_loses_nothing():
    rows = _round_rows(5, {"b": 1, "a": 2, "c": 3})
    ordered, size = order_requests(rows, "checkpoint_path", "prompt_id", 2)
    assert size == 6
    assert sorted(map(repr, ordered)) == sorted(map(repr, rows))
    assert [r["checkpoint_path"] for r in ordered] == ["/ck/b"] * 5 + ["/ck/a"] * 5 + ["/ck/c"] * 5
    # Within a checkpoint, prompts keep their input order (a call's seed derives from the rows it holds).
    assert [r["prompt_id"] for r in ordered[:5]] == [f"p{i}" for i in range(5)]


def test_uneven_rows_per_prompt_round_to_at_least_one():
    rows = [{"prompt_id": "p0", "checkpoint_path": "a", "n": 1}, {"prompt_id": "p1", "checkpoint_path": "a", "n": 1},
            {"prompt_id": "p1", "checkpoint_path": "b", "n": 1}]
    assert order_requests(rows, "checkpoint_path", "prompt_id", 1)[1] == 2  # 1.5 rows per prompt
    assert order_requests([], "checkpoint_path", "prompt_id", 8) == ([], 8)
    with pytest.raises(ValueError, match="request_batch"):
        order_requests(rows, "checkpoint_path", "prompt_id", 0)


@pytest.mark.parametrize("rows, batch, blocks", [(0, 8, 1), (5, 8, 1), (64, 8, 8), (10_000, 8, 179)])
def test_judge_input_blocks_are_whole_calls(rows, batch, blocks):
    table = pa.table({"x": list(range(rows))})
    pieces = _blocks(table, batch)
    assert len(pieces) == blocks <= 200
    assert all(p.num_rows % batch == 0 for p in pieces[:-1])
    assert pa.concat_tables(pieces)["x"].to_pylist() == list(range(rows))
