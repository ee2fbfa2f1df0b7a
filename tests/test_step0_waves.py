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


def test_trainings_one_after_another_share_the_warm_group_and_of_those_at_once_one_does(tmp_path, monkeypatch):
    """Within the driver's warm block a training alone in its wave is a job of the warm worker group
    (jobs.training.fit reads it); of a wave that runs at once, the first training of the rounds' worker shape
    starts the warm group (for the trainings after step 0) and the others get groups of their own; where
    none has that shape, all do."""
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
        assert seen == {"sft-1": warm, "sft-2": None, "judge": None}
        seen.clear()
        # A judge whose workers differ from the rounds' (here only in their failure budget, which fixes a
        # group too: warm_training.shape_key) does not start the warm group, even first in its wave.
        other = _ctx(tmp_path / "c")
        other.cfg.judge_train.max_failures = other.cfg.train.max_failures + 1
        judge_first = [im.Training("judge", [], 0, judge=True), im.Training("sft-1", [], 1)]
        im.train_together(other, tmp_path, judge_first)
        assert seen == {"judge": None, "sft-1": warm}, "the rounds' shape, not the first of the wave"
        assert im.warm_pick(other, judge_first[:1]) is None
    with warm_trainers(tmp_path / "ray_train", enabled=False):
        assert im.warm_pick(_ctx(tmp_path / "e"), _trainings()) is None, "no warm group: every one cold"


def _pool(spans, fail=False):
    """A stand-in prompt pool (jobs.beside.Beside) of the pool's usual size that records when it ran."""
    from alma.jobs.beside import Beside

    def work():
        start = time.monotonic()
        time.sleep(0.3)
        spans["pool"] = (start, time.monotonic(), threading.current_thread().name)
        if fail:
            raise RuntimeError("too few prompts")
        return "pool.parquet"

    return Beside("prompt pool", [{"CPU": 0.5}, {"CPU": 0.5}, {"CPU": 0.05}], work)


def test_the_pool_runs_beside_step_0_where_it_delays_no_training(tmp_path, monkeypatch, recorded):
    spans, _ = recorded
    monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 5.0}])
    pool = _pool(spans)
    im.train_together(_ctx(tmp_path), tmp_path, _trainings(), pool)
    assert pool.started and pool.result() == "pool.parquet"
    assert all(_overlap(spans["pool"], spans[n]) for n in ("sft-1", "sft-2", "judge")), spans
    assert spans["pool"][2] == "alma-beside-prompt pool"


def test_the_pool_waits_where_it_would_delay_a_training(tmp_path, monkeypatch, recorded):
    spans, _ = recorded
    # 4 CPUs hold the three 1-CPU trainings, or two of them and the pool: the trainings come first
    monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 4.0}])
    pool = _pool(spans)
    im.train_together(_ctx(tmp_path), tmp_path, _trainings(), pool)
    assert not pool.started and "pool" not in spans
    assert _overlap(spans["sft-1"], spans["judge"]), "step 0 kept its one wave"
    with pytest.raises(RuntimeError, match="never started"):
        pool.result()
    # nothing left to train (a resumed run): nothing is started beside it either
    ctx = _ctx(tmp_path / "b")
    monkeypatch.setattr(ctx, "committed", lambda stage_dir: True)
    monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 64.0}])
    pool = _pool(spans)
    im.train_together(ctx, tmp_path, _trainings(), pool)
    assert not pool.started


def test_a_pool_that_fails_beside_step_0_fails_the_run_after_step_0(tmp_path, monkeypatch, recorded):
    spans, _ = recorded
    monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 5.0}])
    pool = _pool(spans, fail=True)
    im.train_together(_ctx(tmp_path), tmp_path, _trainings(), pool)
    assert set(spans) == {"sft-1", "sft-2", "judge", "pool"}, "step 0 trained on (kept for the resume)"
    with pytest.raises(RuntimeError, match="too few prompts"):
        pool.result()
    with pytest.raises(RuntimeError, match="started already"):
        pool.start()


def test_what_the_pool_holds_at_its_peak():
    from alma.cluster.serve_apps import replica_bundle
    from alma.jobs.pool import pool_bundles

    cfg = load_config(preset="tiny", overrides=["serve.data_concurrency=2", "pool.embed_actors=2",
                                                "serve.resources={alma_worker: 1}"])
    replica = replica_bundle(cfg)
    assert replica == {"CPU": 0.5, "alma_worker": 1.0}
    assert pool_bundles(cfg) == [replica] * 3 + [{"CPU": 0.05}] * 2  # generator replica, 2 embedders, 2 callers
    # a pool too large to hand over from the driver is read by Ray Data's read tasks, one CPU each
    large = load_config(preset="tiny", overrides=["pool.attempts=300000"])
    assert pool_bundles(large)[-1] == {"CPU": 1.0}
