"""Step 0's trainings in waves (jobs.initial_models.train_together): which start together, that a failure
does not stop the others of its wave, and that committed ones are skipped. The trainings themselves are
stand-ins here; the tiny run (tests/test_e2e.py) trains them for real, at once."""

import threading
import time

import pytest

from alma.config import load_config
from alma.jobs import initial_models as im
from alma.jobs.run_context import RunContext


def _ctx(tmp_path, **cluster):
    cfg = load_config(preset="tiny", overrides=[f"cluster.{k}={v}" for k, v in cluster.items()])
    ctx = RunContext(cfg, tmp_path / "run")
    ctx.open()
    return ctx


def _trainings():
    return [im.Training("sft-1", [], 1), im.Training("sft-2", [], 2), im.Training("judge", [], 0, judge=True)]


@pytest.fixture
def recorded(monkeypatch):
    """train_stage replaced by a stand-in that records when each training ran, on which thread."""
    spans: dict[str, tuple[float, float, str]] = {}
    fail: set[str] = set()

    def fake(ctx, name, base, rows, seed, judge=False, round=None):
        start = time.monotonic()
        time.sleep(0.3)
        spans[name] = (start, time.monotonic(), threading.current_thread().name)
        if name in fail:
            raise RuntimeError(f"{name} broke")
        return ctx.layout.checkpoint(name)

    monkeypatch.setattr(im, "train_stage", fake)
    return spans, fail


def _overlap(a, b):
    return a[0] < b[1] and b[0] < a[1]


def test_three_trainings_that_fit_run_at_once(tmp_path, monkeypatch, recorded):
    spans, _ = recorded
    monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 4.0}])
    ctx = _ctx(tmp_path)
    paths = im.train_together(ctx, tmp_path, _trainings())
    assert [p.name for p in paths] == ["sft-1", "sft-2", "judge"]
    assert _overlap(spans["sft-1"], spans["judge"]) and _overlap(spans["sft-2"], spans["judge"])


def test_no_room_or_a_limit_of_one_trains_one_after_another(tmp_path, monkeypatch, recorded):
    spans, _ = recorded
    monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 1.0}])
    im.train_together(_ctx(tmp_path), tmp_path, _trainings())
    order = sorted(spans, key=lambda n: spans[n][0])
    assert order == ["sft-1", "sft-2", "judge"] and not _overlap(spans["sft-1"], spans["sft-2"])
    spans.clear()
    monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 64.0}])
    im.train_together(_ctx(tmp_path / "b", concurrent_trainings=1), tmp_path, _trainings())
    assert not _overlap(spans["sft-2"], spans["judge"])


def test_a_failing_training_lets_the_others_of_its_wave_finish(tmp_path, monkeypatch, recorded):
    spans, fail = recorded
    fail.add("sft-1")
    monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 4.0}])
    with pytest.raises(RuntimeError, match="sft-1 broke"):
        im.train_together(_ctx(tmp_path), tmp_path, _trainings())
    assert set(spans) == {"sft-1", "sft-2", "judge"}, "the judge and sft-2 still trained (kept for the resume)"


def test_committed_trainings_take_no_room(tmp_path, monkeypatch, recorded):
    spans, _ = recorded
    ctx = _ctx(tmp_path)
    seen = []
    monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 2.0}])
    monkeypatch.setattr(im, "waves", lambda bundles, nodes, at_most: seen.append(len(bundles)) or [[0, 1]])
    monkeypatch.setattr(ctx, "committed", lambda stage_dir: stage_dir.name == "sft-1")
    im.train_together(ctx, tmp_path, _trainings())
    assert seen == [2], "only sft-2 and the judge are packed"
    assert _overlap(spans["sft-2"], spans["judge"])


def test_trainings_one_after_another_share_the_warm_group_and_those_at_once_do_not(tmp_path, monkeypatch):
    """Within the driver's warm block a training alone in its wave is a job of the warm worker group
    (jobs.training.fit reads it); the trainings of a wave that runs at once each get their own."""
    from alma.jobs.training import WARM
    from alma.jobs.warm_training import warm_trainers

    seen: dict[str, object] = {}

    def fake(ctx, name, base, rows, seed, judge=False, round=None):
        seen[name] = WARM.get()
        return ctx.layout.checkpoint(name)

    monkeypatch.setattr(im, "train_stage", fake)
    with warm_trainers(tmp_path / "ray_train") as warm:
        monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 1.0}])
        im.train_together(_ctx(tmp_path / "a"), tmp_path, _trainings())
        assert seen == {"sft-1": warm, "sft-2": warm, "judge": warm}
        seen.clear()
        monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 4.0}])
        im.train_together(_ctx(tmp_path / "b"), tmp_path, _trainings())
        assert seen == {"sft-1": None, "sft-2": None, "judge": None}
