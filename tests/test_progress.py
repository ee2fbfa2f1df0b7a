"""Progress lines: rate, time left, and how often they are written on a terminal and in a log."""

import json
import logging
import math
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alma.core.progress import (
    LOG_INTERVAL_S,
    Progress,
    Throttle,
    format_duration,
    format_rate,
    log_interval_s,
)
from alma.core.run_layout import RunLayout
from alma.jobs import progress as jp


def test_durations_and_rates_read_well():
    assert [format_duration(s) for s in (0, 4.4, 59.6, 125, 3720, -3)] == ["0s", "4s", "1m00s", "2m05s", "1h02m", "0s"]
    assert format_duration(math.inf) == "?"
    assert format_rate(3.14159, "rows") == "3.14 rows/s"
    assert format_rate(0.1, "steps") == "6 steps/min"


def test_log_interval_comes_from_the_environment_when_it_is_a_positive_number():
    assert log_interval_s({}) == LOG_INTERVAL_S
    assert log_interval_s({"ALMA_PROGRESS_INTERVAL_S": "5"}) == 5.0
    for bad in ("0", "-1", "soon", "nan", "inf"):
        assert log_interval_s({"ALMA_PROGRESS_INTERVAL_S": bad}) == LOG_INTERVAL_S


def test_throttle_waits_a_whole_interval_first_unless_immediate():
    t = Throttle(10, start=100)
    assert [t.ready(now) for now in (101, 109.9, 110, 115, 119.9, 120.5)] == [False, False, True, False, False, True]
    t = Throttle(10, start=100, immediate=True)
    assert [t.ready(now) for now in (100, 105, 110)] == [True, False, True]


def test_rate_and_eta_leave_out_the_start_up_before_the_first_row():
    p = Progress("round 1 responses", start=0.0, total=100)
    p.update(0, 20.0)  # actors starting: nothing yet
    assert p.rate() is None and p.eta() is None
    assert p.line() == "round 1 responses: 0/100 rows (0%), elapsed 20s"
    p.update(10, 30.0)  # first rows: only the average since the start is known, too slow for a time left
    assert p.rate() == pytest.approx(10 / 30) and p.eta() is None
    assert p.line() == "round 1 responses: 10/100 rows (10%), 20 rows/min, elapsed 30s"
    p.update(30, 40.0)  # 20 rows in the 10 s since the first ones
    assert p.rate() == pytest.approx(2.0)
    assert p.eta() == pytest.approx(35.0)
    assert p.line() == "round 1 responses: 30/100 rows (30%), 2 rows/s, ETA 35s, elapsed 40s"
    p.update(20, 41.0)  # counts never go back (a file seen twice, a restarted worker)
    assert p.done == 30
    assert p.as_dict() == {"label": "round 1 responses", "unit": "rows", "done": 30, "total": 100,
                           "rate": pytest.approx(20 / 11), "eta_s": pytest.approx(70 * 11 / 20), "elapsed_s": 41.0}


def test_unknown_total_has_no_percentage_or_eta():
    p = Progress("train sft-1", start=0.0, unit="steps")
    p.update(4, 8.0)
    assert p.line() == "train sft-1: 4 steps, 30 steps/min, elapsed 8s"
    p.update(5, 9.0, total=10)  # a training worker says its total once it starts
    assert p.total == 10 and "(50%)" in p.line() and "ETA 5s" in p.line(), "1 step/s since the first"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_log_gets_one_line_per_interval_and_none_for_a_short_stage(capsys, monkeypatch):
    monkeypatch.delenv("ALMA_PROGRESS_INTERVAL_S", raising=False)
    clock = Clock()
    short = jp.Reporter("round 1 judge", 24, "rows", tty=False, clock=clock)
    for second in range(1, 25):  # a stage of 24 s, polled every second
        clock.now += 1
        short.update(second)
    short.close()
    assert capsys.readouterr().out == ""
    clock = Clock()
    long = jp.Reporter("round 1 responses", 600, "rows", tty=False, clock=clock)
    for second in range(1, 601):  # ten minutes
        clock.now += 1
        long.update(second)
    long.close()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 20, "one line per 30 s"
    assert "\r" not in "".join(lines)
    assert lines[0].endswith("round 1 responses: 30/600 rows (5%), 1 rows/s, ETA 9m30s, elapsed 30s")


def test_a_terminal_line_is_redrawn_in_place_and_cleared_at_the_end(caplog):
    clock, written = Clock(), []
    caplog.set_level(logging.INFO, logger="alma")
    reporter = jp.Reporter("train round-1", None, "steps", tty=True, clock=clock, write=written.append)
    for tenth in range(1, 401):  # 40 s polled every 0.1 s
        clock.now += 0.1
        reporter.update(tenth // 10)
    reporter.close()
    assert 70 <= len(written) <= 82, "redrawn about twice a second"
    assert all(w.startswith("\r\x1b[K") for w in written) and written[-1] == "\r\x1b[K"
    assert [r.getMessage() for r in caplog.records] == ["train round-1: 30 steps, 1 steps/s, elapsed 30s"]


def test_parquet_rows_counts_complete_files_only(tmp_path):
    folder = tmp_path / "_streamed"
    count = jp.ParquetRows(folder)
    assert count() == 0  # not there yet
    folder.mkdir()
    pq.write_table(pa.table({"x": list(range(5))}), folder / "a.parquet")
    (folder / "b.parquet").write_bytes(b"PAR1 half written")
    assert count() == 5
    pq.write_table(pa.table({"x": list(range(3))}), folder / "b.parquet")
    assert count() == 8


def test_watch_polls_in_the_background_and_a_failing_poll_stops_only_the_watcher(capsys, monkeypatch):
    monkeypatch.setenv("ALMA_PROGRESS_INTERVAL_S", "0.05")
    seen = []

    def poll():
        seen.append(len(seen))
        if len(seen) > 3:
            raise OSError("gone")
        return len(seen), 10

    with jp.watch(poll, label="pool embeddings", every=0.02) as reporter:
        deadline = time.time() + 10
        while len(seen) < 4 and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
    assert len(seen) == 4 and reporter.progress.done == 3 and reporter.progress.total == 10
    assert "pool embeddings: " in capsys.readouterr().out


def test_stage_running_keeps_progress_json_for_alma_status(tmp_path, monkeypatch):
    monkeypatch.setenv("ALMA_PROGRESS_INTERVAL_S", "1000")
    read = lambda: json.loads(RunLayout(tmp_path).progress.read_text())  # noqa: E731
    with jp.stage_running(tmp_path, "round 2 responses"):
        state = read()
        assert (state["state"], state["stage"], state["pid"]) == ("running", "round 2 responses", os.getpid())
        assert jp.current_label("x") == "round 2 responses"
        reporter = jp.Reporter(jp.current_label("x"), 24, "rows", tty=False)
        reporter.update(12)
        assert read()["progress"]["done"] == 12 and read()["progress"]["total"] == 24
    assert read()["state"] == "idle" and read()["last_stage"] == "round 2 responses"
    assert jp.current_label("x") == "x"
    with pytest.raises(KeyboardInterrupt), jp.stage_running(tmp_path, "train round-2"):
        raise KeyboardInterrupt
    assert (read()["state"], read()["stage"], read()["error"]) == ("failed", "train round-2", "KeyboardInterrupt")


def test_training_steps_travel_through_a_file_beside_the_stage(tmp_path):
    output = tmp_path / "checkpoints" / ".tmp-round-1-123"
    path = jp.steps_file(output)
    assert path.parent == output.parent and not path.name.startswith(".tmp-round-1-"), \
        "never taken for a stage's leftover temporary folder"
    assert jp.read_steps(path) == (0, None)
    jp.write_steps(path, 3, 10)
    assert jp.read_steps(path) == (3, 10)
    path.write_text("{torn")
    assert jp.read_steps(path) == (0, None)


def test_stages_running_side_by_side_share_progress_json(tmp_path, monkeypatch):
    """Step 0's trainings overlap: progress.json lists each running one, and says idle only when the last ends."""
    monkeypatch.setenv("ALMA_PROGRESS_INTERVAL_S", "1000")
    read = lambda: json.loads(RunLayout(tmp_path).progress.read_text())  # noqa: E731
    first, second = jp.stage_running(tmp_path, "train sft-1"), jp.stage_running(tmp_path, "train judge")
    first.__enter__()
    second.__enter__()
    state = read()
    assert state["state"] == "running" and state["stage"] == "train sft-1"
    assert [e["stage"] for e in state["running"]] == ["train sft-1", "train judge"]
    jp.Reporter("train judge", 10, "steps", tty=False).update(4)
    assert [e["progress"] and e["progress"]["done"] for e in read()["running"]] == [None, 4]
    first.__exit__(None, None, None)
    state = read()
    assert state["state"] == "running" and [e["stage"] for e in state["running"]] == ["train judge"]
    second.__exit__(None, None, None)
    assert read()["state"] == "idle" and read()["last_stage"] == "train judge"


def test_a_stage_failing_beside_another_is_reported_once_both_end(tmp_path):
    read = lambda: json.loads(RunLayout(tmp_path).progress.read_text())  # noqa: E731
    ok, bad = jp.stage_running(tmp_path, "train sft-2"), jp.stage_running(tmp_path, "train sft-1")
    ok.__enter__()
    bad.__enter__()
    bad.__exit__(RuntimeError, RuntimeError("x"), None)
    assert read()["state"] == "running" and [e["stage"] for e in read()["running"]] == ["train sft-2"]
    ok.__exit__(None, None, None)
    assert (read()["state"], read()["stage"], read()["error"]) == ("failed", "train sft-1", "RuntimeError")
