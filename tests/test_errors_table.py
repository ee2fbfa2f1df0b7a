"""What a stage streamed through a deployment is split into: result files without the error columns, and
errors.parquet with every row that failed for good and why (no Ray: the files are what Ray Data writes)."""

import pyarrow as pa
import pyarrow.parquet as pq

from alma.actors.callers import GenerateCaller, JudgeCaller
from alma.core.tables import ERRORS_FILE, data_files, read_table
from alma.jobs.streaming import split_errors


def _generated(rows):
    """Rows as GenerateCaller returns them: (prompt_id, sample, response, error, attempts, rows_lost)."""
    cols = list(zip(*rows))
    return pa.table({"prompt_id": list(cols[0]), "prompt": [f"q {p}" for p in cols[0]],
                     "checkpoint": ["sft-1"] * len(rows), "sample": pa.array(cols[1], pa.int64()),
                     "response": pa.array(cols[2], pa.string()), "error": pa.array(cols[3], pa.string()),
                     "attempts": pa.array(cols[4], pa.int32()), "rows_lost": pa.array(cols[5], pa.int64())})


def test_results_and_errors_are_split_and_counted(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "stage"
    raw.mkdir()
    pq.write_table(_generated([("p1", 0, "a", None, 1, 0), ("p1", 1, "b", None, 1, 0),
                               ("p2", None, None, "ActorDiedError: replica died", 5, 2)]), raw / "1.parquet")
    pq.write_table(_generated([("p3", 0, "c", None, 2, 0), ("p3", 1, "d", None, 2, 0)]), raw / "2.parquet")
    pq.write_table(_generated([("p4", None, None, "ValueError: bad", 6, 2)]), raw / "3.parquet")
    streamed = split_errors(raw, out, GenerateCaller.results)
    assert (streamed.rows, streamed.errors, streamed.rows_lost, streamed.retried_rows) == (4, 2, 4, 2)
    assert [f.name for f in data_files(out)] == ["1.parquet", "2.parquet"], "no empty result file"
    results = read_table(out)
    assert results.column_names == ["prompt_id", "prompt", "checkpoint", "sample", "response"]
    assert results["response"].to_pylist() == ["a", "b", "c", "d"]
    errors = pq.read_table(out / ERRORS_FILE)
    assert errors.column_names == ["prompt_id", "prompt", "checkpoint", "error", "attempts", "rows_lost"]
    assert errors.to_pylist() == [
        {"prompt_id": "p2", "prompt": "q p2", "checkpoint": "sft-1", "error": "ActorDiedError: replica died",
         "attempts": 5, "rows_lost": 2},
        {"prompt_id": "p4", "prompt": "q p4", "checkpoint": "sft-1", "error": "ValueError: bad", "attempts": 6,
         "rows_lost": 2}]
    assert streamed.info() == {"errors": 2, "retried_rows": 2, "errors_file": ERRORS_FILE, "rows_lost": 4}
    assert streamed.info("raw")["errors_file"] == "raw/errors.parquet"


def test_a_clean_stream_has_no_errors_table(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "stage"
    raw.mkdir()
    judged = pa.table({"prompt": ["q"], "response": ["r"], "score": [7.5], "distribution": [[0.1] * 11],
                       "missing": [0], "error": pa.array([None], pa.string()),
                       "attempts": pa.array([1], pa.int32()), "rows_lost": pa.array([0], pa.int64())})
    pq.write_table(judged, raw / "a.parquet")
    streamed = split_errors(raw, out, JudgeCaller.results)
    assert (streamed.rows, streamed.errors) == (1, 0) and not (out / ERRORS_FILE).exists()
    assert streamed.info() == {"errors": 0, "retried_rows": 0}
    assert read_table(out).column_names == ["prompt", "response", "score", "distribution", "missing"]


class _Response:
    def __init__(self, value=None, error=None):
        self.value, self.error, self.cancelled = value, error, False

    def result(self, timeout_s=None):
        if self.error:
            raise self.error
        return self.value

    def cancel(self):
        self.cancelled = True


class _Method:
    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def remote(self, *args):
        self.calls.append(args)
        try:
            return _Response(self.answer(*args))
        except Exception as e:  # a replica's failure surfaces when the result is collected
            return _Response(error=e)


class _Handle:
    """A stand-in deployment handle: answers like the generator and the judge; 'poison' always fails."""

    def __init__(self):
        self.generate = _Method(lambda prompts, n, sampling: {"node": "replica-node", "completions": [
            [f"{p[0]['content']} #{s}" for s in range(n)] if "poison" not in p[0]["content"] else 1 / 0
            for p in prompts]})
        self.score = _Method(lambda pairs, mode: [
            {"score": 5.0, "distribution": [1 / 11] * 11, "missing": 0, "node": "judge-node"}
            if "poison" not in p["response"] else {}["no such key"] for p in pairs])

    def options(self, **kwargs):
        return self


RETRY = {"retries": 1, "backoff_s": 0, "max_backoff_s": 0, "timeout_s": None}


def test_callers_return_every_row_as_a_result_or_an_error(tmp_path, monkeypatch):
    import numpy as np

    import alma.actors.callers as callers

    handle = _Handle()
    monkeypatch.setattr(callers, "_handle", lambda app, deployment: handle)
    prompts = ["fine one", "poison", "fine two"]
    batch = {"prompt_id": np.array(["a", "b", "c"]), "prompt": np.array(prompts), "mode": np.array(["chat"] * 3),
             "checkpoint": np.array(["sft-1"] * 3), "checkpoint_path": np.array(["/ck"] * 3),
             "n": np.array([2, 2, 2]), "seed": np.array(["s1", "s2", "s3"])}
    generated = callers.GenerateCaller({"max_new_tokens": 4}, RETRY)(batch)
    # the batch call (twice: one retry), then each row alone
    assert [len(call[0]) for call in handle.generate.calls] == [3, 3, 1, 1, 1]
    raw = tmp_path / "raw"
    raw.mkdir()
    pq.write_table(generated, raw / "g.parquet")
    streamed = split_errors(raw, tmp_path / "responses", callers.GenerateCaller.results)
    assert (streamed.rows, streamed.errors, streamed.rows_lost) == (4, 1, 2)
    # Which node ran what: outside Ray the caller has no node; the replica's is counted per result row.
    assert streamed.nodes == {"callers": {}, "replicas": {"replica-node": 4}}
    assert "_replica_node" not in pq.read_table(tmp_path / "responses" / "g.parquet").column_names
    [error] = pq.read_table(tmp_path / "responses" / ERRORS_FILE).to_pylist()
    assert error["prompt_id"] == "b" and error["attempts"] == 3
    assert error["error"].startswith("ZeroDivisionError: division by zero (alone; with its batch:")

    judged = callers.JudgeCaller(RETRY)({"prompt": np.array(["q", "q"]), "response": np.array(["ok", "poison"])})
    assert judged["score"].to_pylist() == [5.0, None] and judged["rows_lost"].to_pylist() == [0, 1]
    assert judged["_replica_node"].to_pylist() == ["judge-node", None]
    assert judged["error"].to_pylist()[1].startswith("KeyError: 'no such key'")
