"""Atomic stage commits: committed means manifest present; a failure leaves nothing behind."""

import pytest

from alma.core.errors import RunStateError
from alma.core.manifest import check_committed, commit_stage, read_manifest


def test_commit_writes_manifest_last_with_hashes(tmp_path):
    stage = tmp_path / "pool"
    with commit_stage(stage, "pool", "abc") as w:
        (w.path / "prompts.parquet").write_bytes(b"data")
        w.rows, w.info = 1, {"k": 2}
        assert not stage.exists()
    m = read_manifest(stage)
    assert m.rows == 1 and m.info == {"k": 2} and m.config_hash == "abc"
    assert set(m.files) == {"prompts.parquet"} and len(m.files["prompts.parquet"]) == 64
    assert check_committed(stage, "abc") == m
    with pytest.raises(RunStateError, match="another config"):
        check_committed(stage, "other")


def test_failed_stage_leaves_nothing(tmp_path):
    stage = tmp_path / "s"
    with pytest.raises(ZeroDivisionError):
        with commit_stage(stage, "s", "h") as w:
            (w.path / "half").write_text("x")
            1 / 0
    assert not stage.exists() and list(tmp_path.iterdir()) == []
    assert check_committed(stage, "h") is None


def test_stale_temp_and_unmanifested_folders_are_cleared(tmp_path):
    (tmp_path / ".tmp-s-999").mkdir()
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "junk").write_text("x")
    with commit_stage(tmp_path / "s", "s", "h") as w:
        (w.path / "ok").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["manifest.json", "ok"]
