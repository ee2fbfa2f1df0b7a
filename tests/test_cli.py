"""The CLI edge: user errors are one line on stderr, exit code 2, nothing written."""

import os
import subprocess
import sys


def alma(args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "alma.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_bad_seed_row_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "judge.jsonl"
    bad.write_text('{"prompt": "p", "response": "r", "score": 4}\n{"prompt": "p2", "response": "r2", "score": 12}\n')
    res = alma(["run", "--preset", "tiny", "--seed-judge", str(bad), "--out", str(tmp_path / "run")], tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == f"alma: error: {bad}:2: field 'score': 12 is outside 0..10"
    assert not (tmp_path / "run").exists(), "nothing is written for bad input"


def test_bad_config_and_check_seeds(tmp_path):
    res = alma(["config", "--preset", "tiny", "--set", "round.responses_per_prompt=0"], tmp_path)
    assert res.returncode == 2 and "round.responses_per_prompt" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    ok = alma(["check-seeds", "--seed-sft", "alma/seeds/sft.jsonl"], os.path.dirname(os.path.dirname(__file__)))
    assert ok.returncode == 0 and "SFT rows OK" in ok.stdout
    missing = alma(["run", "--seed-sft", str(tmp_path / "nope.jsonl")], tmp_path)
    assert missing.returncode == 2 and "file not found" in missing.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    """`alma config | head -1`: the pipe closes before alma writes; no traceback, the SIGPIPE exit code."""
    proc = subprocess.Popen([sys.executable, "-m", "alma.cli", "config", "--preset", "tiny"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    proc.stdout.close()  # before the interpreter has even imported alma
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, stderr
    assert stderr == ""


def test_sigterm_unwinds_the_command_so_its_engines_are_closed(tmp_path):
    """`kill PID` of a command works like Ctrl-C: its `finally` blocks run (an engine's close stops vLLM's
    own processes), one line is printed, and the exit code is 143. The command is stood in for by one that
    blocks inside a `finally`, so the test needs no model."""
    marker = tmp_path / "closed"
    script = (
        "import sys, time\n"
        "import alma.commands.model_eval as model_eval\n"
        "from alma import cli\n"
        "def blocking(args):\n"
        "    try:\n"
        "        print('answering', flush=True)\n"
        "        time.sleep(120)\n"
        "    finally:\n"
        f"        open({str(marker)!r}, 'w').write('closed')\n"
        "    return 0\n"
        "model_eval.model_eval_main = blocking\n"
        "sys.exit(cli.main(['eval', 'some-run']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path)
    try:
        assert proc.stdout.readline().strip() == "answering"
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143 and marker.read_text() == "closed"
    assert err.strip() == "alma: interrupted; committed stages are kept, run the same command to resume"
