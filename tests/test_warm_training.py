"""jobs.warm_training without a cluster: which trainings share a worker group, one group at a time, and a
group ended when a Serve replica would not fit beside it. Real worker groups: tests/test_cluster.py."""

import pytest

from alma.config import TrainConfig
from alma.jobs import warm_training as wt


class FakeGroup:
    def __init__(self, key, train, storage):
        self.key, self.alive, self.closed = key, True, False

    def close(self, wait=True):
        self.closed, self.alive = True, False


@pytest.fixture
def trainers(monkeypatch, tmp_path):
    monkeypatch.setattr(wt, "_Group", FakeGroup)
    return wt.WarmTrainers(tmp_path)


def test_trainings_of_one_shape_share_a_group_and_settings_that_change_no_worker_do_not_matter():
    base = TrainConfig(cpus_per_worker=2)
    assert wt.shape_key(base) == wt.shape_key(base.model_copy(update={"max_length": 448, "learning_rate": 1e-5}))
    for change in ({"cpus_per_worker": 1}, {"num_workers": 2}, {"resources": {"alma_worker": 1}},
                   {"max_failures": 5}, {"use_gpu": True}):
        assert wt.shape_key(base) != wt.shape_key(base.model_copy(update=change)), change


def test_one_group_at_a_time(trainers):
    first = trainers._group(TrainConfig(cpus_per_worker=2))
    assert trainers._group(TrainConfig(cpus_per_worker=2, max_length=448)) is first
    other = trainers._group(TrainConfig(cpus_per_worker=1))
    assert first.closed and not other.closed and trainers._current is other


def test_a_group_ray_train_gave_up_on_is_replaced(trainers):
    first = trainers._group(TrainConfig())
    first.alive = False
    assert trainers._group(TrainConfig()) is not first


def test_the_group_makes_room_for_a_replica_that_would_not_fit(trainers, monkeypatch):
    group = trainers._group(TrainConfig())
    monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 1.0}])
    assert not trainers.make_room({"CPU": 0.5}) and not group.closed, "it fits: the group stays"
    monkeypatch.setattr("alma.cluster.resources.free_per_node", lambda: [{"CPU": 0.25}])
    assert trainers.make_room({"CPU": 0.5}) and group.closed and trainers._current is None
    assert not trainers.make_room({"CPU": 0.5}), "no group left to end"


def test_outside_the_block_trainings_get_their_own_worker_group(tmp_path, monkeypatch):
    monkeypatch.setattr(wt, "_Group", FakeGroup)
    assert wt.current_trainers() is None
    with wt.warm_trainers(tmp_path) as warm:
        assert wt.current_trainers() is warm
        group = warm._group(TrainConfig())
    assert wt.current_trainers() is None and group.closed
    with wt.warm_trainers(tmp_path, enabled=False) as off:
        assert off is None and wt.current_trainers() is None
    with pytest.raises(KeyboardInterrupt), wt.warm_trainers(tmp_path) as warm:
        group = warm._group(TrainConfig())
        raise KeyboardInterrupt
    assert group.closed and wt.current_trainers() is None


def test_replica_bundle_is_what_a_replica_asks_for():
    from alma.cluster.serve_apps import replica_bundle
    from alma.config import load_config

    cfg = load_config("tiny", overrides=["serve.resources={alma_worker: 1}"])
    assert replica_bundle(cfg) == {"CPU": 0.5, "alma_worker": 1.0}
