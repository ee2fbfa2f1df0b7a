"""Resuming a run folder: which config changes are refused and how they are named, what --force keeps,
and a resume whose seed files changed. No Ray: these checks all run before anything starts."""

import json

import pytest

from alma.cli import main
from alma.config import config_changes, dump_config, load_config, load_run_config
from alma.core.errors import ConfigError, RunStateError
from alma.core.manifest import check_committed, commit_stage
from alma.jobs.driver import check_run_folder
from alma.jobs.run_context import RunContext


def _started_run(tmp_path, *overrides):
    cfg = load_config("tiny", overrides=[f"out_dir={tmp_path / 'run'}", *overrides])
    ctx = RunContext(cfg, cfg.run_dir())
    ctx.open()
    return ctx


def test_changes_are_named_field_by_field():
    old = load_config("tiny")
    new = load_config("tiny", overrides=["rounds=3", "round.sampling.temperature=0.5", "serve.max_replicas=4",
                                         "train.max_failures=0", "model.trust_remote_code=true"])
    assert config_changes(old, new) == ["round.sampling.temperature 1.0 -> 0.5", "rounds 2 -> 3"]
    assert config_changes(old, old) == []


def test_a_changed_config_is_refused_naming_the_fields(tmp_path):
    _started_run(tmp_path)
    cfg = load_config("tiny", overrides=[f"out_dir={tmp_path / 'run'}", "rounds=3", "seed=7"])
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    with pytest.raises(RunStateError) as refused:
        RunContext(cfg, cfg.run_dir()).open()
    message = str(refused.value)
    assert "another config (rounds 2 -> 3; seed 0 -> 7)" in message and "--force" in message
    assert "\n" not in message
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before


def test_force_keeps_committed_stages_and_the_old_config(tmp_path):
    old = _started_run(tmp_path)
    with commit_stage(old.run_dir / "pool", "prompt pool", old.config_hash) as w:
        w.rows = 3
    cfg = load_config("tiny", overrides=[f"out_dir={tmp_path / 'run'}", "rounds=1"])
    ctx = RunContext(cfg, cfg.run_dir())
    ctx.open(force=True)
    assert (ctx.run_dir / f"config.{old.config_hash}.yaml").read_text() == dump_config(old.cfg)
    assert load_run_config(ctx.run_dir).rounds == 1
    kept = ctx.stage(ctx.run_dir / "pool", "prompt pool", lambda w: pytest.fail("a kept stage is not rebuilt"))
    assert kept.rows == 3 and kept.config_hash == old.config_hash
    with pytest.raises(RunStateError, match="another config"):
        check_committed(ctx.run_dir / "pool", ctx.config_hash)


def test_resume_reads_the_run_config_and_applies_set(tmp_path):
    ctx = _started_run(tmp_path, "seed=5")
    moved = tmp_path / "moved"
    ctx.run_dir.rename(moved)
    cfg = load_run_config(moved, ["serve.max_replicas=2"])
    assert cfg.seed == 5 and cfg.out_dir == str(moved) and cfg.serve.max_replicas == 2
    assert cfg.fingerprint() == ctx.config_hash
    with pytest.raises(ConfigError, match="no config.yaml"):
        load_run_config(tmp_path)
    with pytest.raises(ConfigError, match="no such run folder"):
        load_run_config(tmp_path / "nope")


def test_changed_seed_data_is_refused_unless_forced(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    seeds = {"sft": {"path": "sft.jsonl", "sha256": "a", "rows": 1},
             "judge": {"path": "judge.jsonl", "sha256": "b", "rows": 1}}
    (run / "seeds.json").write_text(json.dumps(seeds))
    check_run_folder(run, seeds, force=False)
    changed = {**seeds, "judge": {**seeds["judge"], "sha256": "c"}}
    with pytest.raises(RunStateError, match=r"other seed data: judge \(judge.jsonl\) changed"):
        check_run_folder(run, changed, force=False)
    check_run_folder(run, changed, force=True)
    with pytest.raises(RunStateError, match="is a file"):
        check_run_folder(run / "seeds.json", seeds, force=False)


def test_cli_resume_refuses_a_change_without_force(tmp_path, capsys, monkeypatch, alma_cache, tiny_model):
    monkeypatch.setenv("ALMA_CACHE", str(alma_cache))
    monkeypatch.chdir(tmp_path)
    ctx = _started_run(tmp_path)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["run", "--resume", str(ctx.run_dir), "--set", "round.responses_per_prompt=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alma: error: ") and "round.responses_per_prompt 6 -> 3" in err and "\n" not in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == files
