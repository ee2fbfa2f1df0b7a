"""`alma status RUN`: from the run folder alone, finished, running, stopped, and while a stage is written."""

import json
import os
import socket
import subprocess
import sys

from run_folder import make_run

from alma.cli import main
from alma.core.run_layout import RunLayout
from alma.commands.status import format_status, run_status


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _progress(run_dir, **fields):
    RunLayout(run_dir).progress.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), **fields}))


def test_finished_run(tmp_path):
    run = tmp_path / "run"
    make_run(run, rounds=2)
    status = run_status(run)
    assert (status.state, status.rounds, status.current_round, status.rounds_done) == ("finished", 2, 2, 2)
    labels = [s["label"] for s in status.stages]
    assert labels[:3] == ["train sft-1", "train sft-2", "prompt pool"] and labels[-1] == "train round-2"
    assert len(labels) == 3 + 2 * 5
    assert status.elapsed_s is not None and status.elapsed_s >= 0
    text = format_status(status)
    assert "state    finished" in text and "round    2 of 2 (2 done)" in text and "13 committed" in text
    assert "round 2 judge" in text and "    18 " in text, "a stage's label and rows"


def test_running_run_shows_the_stage_and_its_progress(tmp_path):
    run = tmp_path / "run"
    make_run(run, rounds=3, done_rounds=1)
    (run / "rounds" / "02").mkdir()
    tmp = run / "rounds" / "02" / f".tmp-responses-{os.getpid()}"
    (tmp / "_streamed").mkdir(parents=True)
    (tmp / "_streamed" / "part.parquet").write_bytes(b"PAR1 being written")
    now = 1_800_000_000.0
    _progress(run, state="running", stage="round 2 responses", started_at=now - 95, updated_at=now - 1,
              progress={"label": "round 2 responses", "unit": "rows", "done": 12, "total": 48, "rate": 0.5,
                        "eta_s": 72, "elapsed_s": 94})
    status = run_status(run, now=now)
    assert status.state == "running" and (status.rounds, status.current_round, status.rounds_done) == (3, 2, 1)
    assert status.detail == "round 2 responses for 1m35s: 12/48 rows (25%), 30 rows/min, ETA 1m12s (as of 1s ago)"
    assert status.leftovers == [], "the folder being written belongs to a live process"
    assert status.elapsed_s >= 95
    # between two stages the driver is still alive: running, not stopped
    _progress(run, state="idle", last_stage="round 1 best-of-N", updated_at=now)
    assert run_status(run, now=now).state == "running"
    assert "between stages" in run_status(run, now=now).detail


def test_killed_driver_is_stopped_and_its_partial_stage_is_a_leftover(tmp_path):
    run = tmp_path / "run"
    make_run(run, rounds=2, done_rounds=1)
    dead = _dead_pid()
    (run / "rounds" / "02" / f".tmp-draw-{dead}").mkdir(parents=True)
    _progress(run, pid=dead, state="running", stage="round 2 draw", started_at=1.0, updated_at=2.0)
    status = run_status(run)
    assert status.state == "stopped" and str(dead) in status.detail and "--resume" in status.detail
    assert status.leftovers == [f"rounds/02/.tmp-draw-{dead}"]
    assert status.rounds_done == 1
    assert "left over: rounds/02/.tmp-draw-" in format_status(status)


def test_torn_files_are_skipped_not_fatal(tmp_path):
    """A reader on a shared file system can see a manifest or progress.json mid-write."""
    run = tmp_path / "run"
    make_run(run, rounds=2, done_rounds=1)
    (run / "rounds" / "02" / "draw").mkdir(parents=True)
    (run / "rounds" / "02" / "draw" / "manifest.json").write_text('{"stage": "round 2 dr')
    RunLayout(run).progress.write_text("{")
    status = run_status(run)
    assert "round 2 draw" not in [s["label"] for s in status.stages]
    assert status.state == "stopped" and status.running is None


def test_a_run_from_before_progress_json_is_judged_by_its_folders(tmp_path):
    run = tmp_path / "run"
    make_run(run, rounds=2, done_rounds=1)
    assert run_status(run).state == "stopped"
    (run / "rounds" / "02").mkdir()
    (run / "rounds" / "02" / f".tmp-draw-{os.getpid()}").mkdir()
    status = run_status(run)
    assert status.state == "running" and "rounds/02/.tmp-draw-" in status.detail and status.current_round == 2


def test_cli(tmp_path, capsys):
    run = tmp_path / "run"
    make_run(run, rounds=2)
    assert main(["status", str(run)]) == 0
    assert "state    finished" in capsys.readouterr().out
    assert main(["status", str(run), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "finished" and len(data["stages"]) == 13
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip() == f"alma: error: {tmp_path / 'nothing'}: no such run folder"
    (tmp_path / "empty").mkdir()
    assert main(["status", str(tmp_path / "empty")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_overlapping_trainings_are_all_shown(tmp_path):
    run = tmp_path / "run"
    make_run(run, rounds=2, done_rounds=0)
    now = 1_800_000_000.0
    entries = [{"stage": "train sft-1", "started_at": now - 30, "progress": None},
               {"stage": "train judge", "started_at": now - 20,
                "progress": {"label": "train judge", "unit": "steps", "done": 2, "total": 8}}]
    _progress(run, state="running", **entries[0], running=entries, updated_at=now - 2)
    status = run_status(run, now=now)
    assert status.state == "running"
    assert status.detail == "train sft-1 for 30s; train judge for 20s: 2/8 steps (25%) (as of 2s ago)"
