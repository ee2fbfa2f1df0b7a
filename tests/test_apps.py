"""jobs.apps without a cluster: a stage's first ask deploys its app (Serve started with the first), later asks
do nothing, the judge is redeployed only for another checkpoint, and the warm group is asked to make room
before each deployment."""

import pytest

from alma.config import load_config
from alma.core.judge_prompt import load_rubric
from alma.jobs.apps import Apps


@pytest.fixture
def calls(monkeypatch):
    seen: list[tuple] = []
    monkeypatch.setattr("alma.cluster.serve_apps.start_serve", lambda: seen.append(("serve",)))
    monkeypatch.setattr("alma.cluster.serve_apps.deploy_generator", lambda cfg: seen.append(("generator",)))
    monkeypatch.setattr("alma.cluster.serve_apps.deploy_judge",
                        lambda cfg, location, rubric: seen.append(("judge", location, rubric)))
    return seen


class _Warm:
    def __init__(self, seen):
        self.seen = seen

    def make_room(self, *bundles):
        self.seen.append(("room", sum(b["CPU"] == 0.5 for b in bundles), sum(b["CPU"] == 0.05 for b in bundles)))
        return False


def test_each_app_is_deployed_once_and_serve_with_the_first(calls, monkeypatch):
    monkeypatch.setattr("alma.jobs.warm_training.current_trainers", lambda: None)
    apps = Apps(load_config("tiny"), rubric="scale")
    apps.judge("/run/checkpoints/judge")
    apps.generator()
    apps.generator()
    apps.judge("/run/checkpoints/judge")
    assert calls == [("serve",), ("judge", "/run/checkpoints/judge", "scale"), ("generator",)]
    apps.judge("/run/checkpoints/judge-distilled")
    assert calls[-1] == ("judge", "/run/checkpoints/judge-distilled", "scale"), "another checkpoint: redeployed"
    assert calls.count(("serve",)) == 1


def test_a_stage_that_is_never_built_deploys_nothing(calls, tmp_path):
    from alma.jobs.run_context import RunContext

    ctx = RunContext(load_config("tiny", overrides=[f"out_dir={tmp_path / 'run'}"]), tmp_path / "run")
    ctx.open()
    ctx.stage(ctx.layout.round(1).scores, "round 1 judge", lambda w: ctx.apps.judge("j"))
    assert calls == [("serve",), ("judge", "j", load_rubric(ctx.cfg.judge.rubric))], "the config's rubric"
    calls.clear()
    ctx.stage(ctx.layout.round(1).scores, "round 1 judge", lambda w: ctx.apps.judge("j"))  # committed: skipped
    fresh = RunContext(ctx.cfg, tmp_path / "run")  # a resumed driver: its own Apps, nothing deployed yet
    fresh.stage(fresh.layout.round(1).scores, "round 1 judge", lambda w: fresh.apps.judge("j"))
    assert calls == [], "a committed stage's build does not run, so its app is never deployed"


def test_the_warm_group_makes_room_before_each_deployment_and_each_stream(calls, monkeypatch):
    """("room", replicas, callers): a new replica's bundle (0.5 CPU in the tiny preset) with the stream's
    caller actors (0.05 CPU each, serve.data_concurrency of them); an app already up asks for the callers
    alone, since the warm group may have been restarted beside it (a training between two streams)."""
    monkeypatch.setattr("alma.jobs.warm_training.current_trainers", lambda: _Warm(calls))
    cfg = load_config("tiny", overrides=["pool.embed_actors=3", "serve.data_concurrency=2"])
    apps = Apps(cfg, rubric="scale")
    apps.generator()
    apps.embedders()
    apps.generator()
    apps.judge("j")
    apps.judge("j")
    assert calls == [("room", 1, 2), ("serve",), ("generator",), ("room", 3, 0), ("room", 0, 2),
                     ("room", 1, 2), ("judge", "j", "scale"), ("room", 0, 2)]
