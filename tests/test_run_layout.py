"""The run folder's map (core/run_layout.py) and the kind and round each stage manifest records."""

import json

import pytest

from alma.core.manifest import STAGE_KINDS, commit_stage, read_manifest
from alma.core.run_layout import RunLayout


def test_paths_are_named_once(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.round(2).scores == tmp_path / "rounds" / "02" / "scores"
    assert layout.round(12).best_file == tmp_path / "rounds" / "12" / "best" / "best.parquet"
    assert layout.checkpoint("judge") == tmp_path / "checkpoints" / "judge"
    assert layout.model_eval == tmp_path / "eval" / "model_eval.json"
    assert layout.rejects("sft") == tmp_path / "seeds" / "rejects-sft.jsonl"
    assert layout.rounds() == []
    for r in (10, 2):
        layout.round(r).draw.mkdir(parents=True)
    (layout.rounds_dir / "notes").mkdir()
    assert [rd.number for rd in layout.rounds()] == [2, 10], "in order, numbered folders only"


def test_round_and_kind_of_a_folder(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.round_of(layout.round(3).responses) == 3
    assert layout.round_of(layout.checkpoint("round-4")) == 4
    assert layout.round_of(layout.checkpoint("sft-1")) is None and layout.round_of(tmp_path.parent) is None
    assert [layout.kind_of(p) for p in (layout.pool, layout.judge_split, layout.checkpoint("sft-2"),
                                        layout.round(1).pairs, layout.round(1).scores, tmp_path / "logs",
                                        layout.base)] == \
        ["pool", "judge-split", "train", "pairs", "scores", "", "base"]
    assert {layout.kind_of(p) for p in (layout.round(1).draw, layout.round(1).responses, layout.round(1).best,
                                        layout.pool_embeddings, layout.pool_clusters, layout.distill_labels)} \
        <= set(STAGE_KINDS)


def test_a_manifest_records_kind_and_round_and_older_ones_still_read(tmp_path):
    stage = RunLayout(tmp_path).round(2).scores
    with commit_stage(stage, "round 2 judge", "abc", kind="scores", round=2) as w:
        w.rows = 0
    manifest = read_manifest(stage)
    assert (manifest.kind, manifest.round, manifest.stage) == ("scores", 2, "round 2 judge")
    with pytest.raises(ValueError, match="unknown stage kind"):
        with commit_stage(tmp_path / "x", "x", "abc", kind="scoring"):
            pass
    assert not (tmp_path / "x").exists()
    older = tmp_path / "older"
    older.mkdir()
    (older / "manifest.json").write_text(json.dumps({"stage": "round 1 judge", "config_hash": "abc", "rows": 3,
                                                     "a_field_from_a_later_version": 1}))
    manifest = read_manifest(older)
    assert (manifest.kind, manifest.round, manifest.rows) == ("", None, 3)


def test_status_reads_rounds_from_manifests_and_older_folders_from_the_layout(tmp_path):
    from alma.core.run_layout import committed_stages

    layout = RunLayout(tmp_path)
    with commit_stage(layout.checkpoint("round-1"), "train round-1", "abc", kind="train", round=1):
        pass
    with commit_stage(layout.checkpoint("round-2"), "train round-2", "abc"):  # as a run before kinds wrote it
        pass
    assert [(s["label"], s["kind"], s["round"]) for s in committed_stages(tmp_path)] == [
        ("train round-1", "train", 1), ("train round-2", "train", 2)]
