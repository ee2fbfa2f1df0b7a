"""Bad input, table-driven, through the real CLI: every case exits 2 with one line naming where and what,
no traceback, and nothing written (no run folder). The cases run through `main()` in-process, a few of
them through a real `python -m alma.cli` process too. The judge's HTTP API has its own table
(tests/test_judge_http.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import alma.cluster.local
from alma.cli import main

SFT = '{"prompt": "What is rain?", "response": "Water falling from clouds."}\n'
JUDGE = '{"prompt": "What is rain?", "response": "Water falling from clouds.", "score": 8}\n'


def _judge(**row) -> str:
    return json.dumps({"prompt": "What is rain?", "response": "Water.", **row}) + "\n"


def _model(folder: Path, weights: str, config: dict) -> None:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", **config}))
    (folder / weights).write_bytes(b"\0" * 16)


# id: (files to write {name: text or bytes or a builder}, argv (RUN = the run folder, T = the test folder),
#      fragments the one error line must hold)
CASES = {
    # seed files
    "seed-not-utf8": ({"judge.jsonl": JUDGE.encode() + b'{"prompt": "caf\xe9", "response": "r", "score": 1}\n'},
                      ["--seed-judge", "T/judge.jsonl"], ["judge.jsonl:2:", "not valid UTF-8"]),
    "seed-invalid-json": ({"sft.jsonl": SFT + '{"prompt": "x", "response": }\n'}, ["--seed-sft", "T/sft.jsonl"],
                          ["sft.jsonl:2:", "invalid JSON"]),
    "seed-missing-field": ({"judge.jsonl": JUDGE + _judge()}, ["--seed-judge", "T/judge.jsonl"],
                           ["judge.jsonl:2:", "field 'score': missing"]),
    "seed-extra-field": ({"judge.jsonl": _judge(score=3, comment="meh")}, ["--seed-judge", "T/judge.jsonl"],
                         ["judge.jsonl:1:", "field 'comment': unknown field"]),
    "seed-wrong-type": ({"judge.jsonl": _judge(score="7")}, ["--seed-judge", "T/judge.jsonl"],
                        ["judge.jsonl:1:", "field 'score': expected a number 0..10, got '7'"]),
    "seed-score-out-of-range": ({"judge.jsonl": JUDGE + _judge(score=12)}, ["--seed-judge", "T/judge.jsonl"],
                                ["judge.jsonl:2:", "field 'score': 12 is outside 0..10"]),
    "seed-fractional-score": ({"judge.jsonl": _judge(score=7.5)}, ["--seed-judge", "T/judge.jsonl"],
                              ["judge.jsonl:1:", "whole number"]),
    "seed-empty-prompt": ({"sft.jsonl": '{"prompt": "   ", "response": "r"}\n'}, ["--seed-sft", "T/sft.jsonl"],
                          ["sft.jsonl:1:", "field 'prompt': empty"]),
    "seed-duplicate-rows": ({"sft.jsonl": SFT + "\n" + SFT}, ["--seed-sft", "T/sft.jsonl"],
                            ["sft.jsonl:3:", "duplicate of line 1"]),
    "seed-empty-file": ({"judge.jsonl": ""}, ["--seed-judge", "T/judge.jsonl"], ["judge.jsonl:", "no rows"]),
    "seed-not-an-object": ({"sft.jsonl": '["What is rain?", "Water."]\n'}, ["--seed-sft", "T/sft.jsonl"],
                           ["sft.jsonl:1:", "expected a JSON object"]),
    "seed-mixed-layouts": ({"sft.jsonl": '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", '
                                         '"content": "a"}], "prompt": "q"}\n'},
                           ["--seed-sft", "T/sft.jsonl"], ["sft.jsonl:1:", "field 'prompt'", "one layout"]),
    "seed-last-turn-not-assistant": ({"sft.jsonl": '{"messages": [{"role": "user", "content": "q"}]}\n'},
                                     ["--seed-sft", "T/sft.jsonl"], ["sft.jsonl:1:", "assistant"]),
    "seed-unknown-role": ({"sft.jsonl": '{"conversations": [{"from": "robot", "value": "q"}, '
                                        '{"from": "gpt", "value": "a"}]}\n'},
                          ["--seed-sft", "T/sft.jsonl"], ["sft.jsonl:1:", "conversations[0].from", "robot"]),
    "seed-corrupt-parquet": ({"judge.parquet": b"PAR1 this is not parquet"}, ["--seed-judge", "T/judge.parquet"],
                             ["judge.parquet:", "not a readable Parquet file"]),
    "seed-missing-file": ({}, ["--seed-sft", "T/nope.jsonl"], ["nope.jsonl:", "file not found"]),
    "seed-wrong-extension": ({"sft.csv": "prompt,response\nq,a\n"}, ["--seed-sft", "T/sft.csv"],
                             ["sft.csv:", "unsupported file type"]),
    # config files and --set
    "config-unknown-key": ({"c.yaml": "roundz: 3\n"}, ["--config", "T/c.yaml"], ["c.yaml:", "unknown key 'roundz'"]),
    "config-wrong-type": ({"c.yaml": "rounds: two\n"}, ["--config", "T/c.yaml"], ["c.yaml:", "'rounds'", "integer"]),
    "config-n-zero": ({"c.yaml": "round:\n  responses_per_prompt: 0\n"}, ["--config", "T/c.yaml"],
                      ["c.yaml:", "'round.responses_per_prompt'", "greater than or equal to 1"]),
    "config-mix-sums-to-zero": ({"c.yaml": "round:\n  checkpoint_mix: {sft-1: 0, sft-2: 0, latest: 0}\n"},
                                ["--config", "T/c.yaml"], ["c.yaml:", "checkpoint_mix", "positive sum"]),
    "config-mix-negative": ({}, ["--set", "round.checkpoint_mix={sft-1: 2, sft-2: -1}"],
                            ["--set round.checkpoint_mix={sft-1: 2, sft-2: -1}:", ">= 0"]),
    "config-mix-only-latest": ({}, ["--set", "round.checkpoint_mix={latest: 1}"],
                               ["checkpoint_mix", "leaves round 1 no checkpoint"]),
    "config-mix-unknown-checkpoint": ({}, ["--set", "round.checkpoint_mix={sft-3: 1}"],
                                      ["checkpoint_mix", "unknown checkpoints ['sft-3']"]),
    "config-not-yaml": ({"c.yaml": "rounds: [1,\n"}, ["--config", "T/c.yaml"], ["c.yaml:", "not valid YAML"]),
    "config-not-a-mapping": ({"c.yaml": "- rounds\n- 3\n"}, ["--config", "T/c.yaml"], ["c.yaml:", "mapping"]),
    "config-missing-file": ({}, ["--config", "T/nope.yaml"], ["nope.yaml:", "cannot read config"]),
    "config-pool-too-small": ({}, ["--set", "rounds=20"], ["preset tiny + --set:", "= 80 prompts", "pool.attempts = 48"]),
    "config-min-above-max": ({}, ["--set", "pool.min_chars=500", "--set", "pool.max_chars=10"],
                             ["--set pool.max_chars=10:", "min_chars (500) is above max_chars (10)"]),
    "config-set-without-value": ({}, ["--set", "rounds"], ["--set rounds:", "KEY=VALUE"]),
    "config-rubric-missing": ({}, ["--set", "judge.rubric=T/rubric.md"], ["judge.rubric", "rubric.md", "cannot read"]),
    "config-base-not-a-model": ({}, ["--set", "model.base=T/nomodel"], ["nomodel", "config.json"]),
    "config-base-pickled-weights": ({"bin-model": lambda p: _model(p, "pytorch_model.bin", {})},
                                    ["--set", "model.base=T/bin-model"], ["bin-model", "safetensors only"]),
    "config-base-remote-code": ({"code-model": lambda p: _model(p, "model.safetensors",
                                                                {"auto_map": {"AutoModel": "x.Y"}})},
                                ["--set", "model.base=T/code-model"], ["code-model", "model.trust_remote_code=true"]),
    # command-line arguments
    "cli-unknown-flag": ({}, ["--rounds", "3"], ["unrecognized arguments: --rounds 3"]),
    "cli-bad-preset": ({}, ["!", "run", "--preset", "huge"], ["run:", "invalid choice: 'huge'"]),
    "cli-missing-value": ({}, ["!", "run", "--out"], ["run:", "--out: expected one argument"]),
    "cli-no-command": ({}, ["!"], ["the following arguments are required: command"]),
    "cli-resume-not-a-run": ({}, ["!", "run", "--resume", "T/nothing"], ["nothing: no such run folder"]),
    "cli-resume-with-preset": ({"old": lambda p: p.mkdir()}, ["!", "run", "--resume", "T/old", "--preset", "tiny"],
                               ["--resume", "drop --preset"]),
    "cli-out-is-a-file": ({"taken": "x"}, ["!", "run", "--preset", "tiny", "--out", "T/taken"],
                          ["taken is a file, not a run folder"]),
}
IN_A_PROCESS = ("seed-not-utf8", "config-unknown-key", "cli-unknown-flag")


def _argv(args: list[str], tmp: Path) -> list[str]:
    """`alma run --preset tiny --out RUN ARGS`, or ARGS as given after a leading '!'; T/ is the test folder."""
    args = [a.replace("T/", f"{tmp}/") for a in args]
    if args[:1] == ["!"]:
        return args[1:]
    return ["run", "--preset", "tiny", "--out", str(tmp / "run"), *args]


def _write(files: dict, tmp: Path) -> None:
    for name, content in files.items():
        path = tmp / name
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def _tree(tmp: Path) -> list[Path]:
    return sorted(p.relative_to(tmp) for p in tmp.rglob("*"))


@pytest.fixture
def where(tmp_path, monkeypatch, alma_cache, tiny_model):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALMA_CACHE", str(alma_cache))

    def no_ray(*args, **kwargs):
        raise AssertionError("bad input reached the cluster")

    monkeypatch.setattr(alma.cluster.local, "start_ray", no_ray)
    return tmp_path


def _check_line(err: str, fragments: list[str]) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("alma: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, where, capsys):
    files, args, fragments = CASES[case]
    _write(files, where)
    before = _tree(where)
    try:
        code = main(_argv(args, where))
    except SystemExit as e:  # argparse
        code = e.code
    assert code == 2
    _check_line(capsys.readouterr().err, fragments)
    assert _tree(where) == before, "nothing is written"
    assert not (where / "runs").exists()


@pytest.mark.parametrize("case", IN_A_PROCESS)
def test_bad_input_in_a_real_process(case, tmp_path, alma_cache):
    files, args, fragments = CASES[case]
    _write(files, tmp_path)
    before = _tree(tmp_path)
    env = {**os.environ, "ALMA_CACHE": str(alma_cache), "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "alma.cli", *_argv(args, tmp_path)], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    _check_line(res.stderr, fragments)
    assert _tree(tmp_path) == before


def test_the_table_covers_what_the_issue_lists():
    kinds = {case.split("-")[0] for case in CASES}
    assert kinds == {"seed", "config", "cli"} and len(CASES) >= 20
