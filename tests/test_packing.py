"""core.packing: which of step 0's trainings start together, from the nodes' free resources alone."""

import pytest

from alma.core.packing import place, reserve, waves, waves_beside

ONE_CPU = [{"CPU": 1.0}]


def test_three_one_cpu_trainings_overlap_on_a_four_cpu_node():
    assert waves([ONE_CPU, ONE_CPU, ONE_CPU], [{"CPU": 4.0}], at_most=3) == [[0, 1, 2]]


def test_no_room_to_spare_keeps_the_one_after_another_order():
    two = [{"CPU": 2.0}]
    assert waves([two, two, two], [{"CPU": 2.0}], at_most=3) == [[0], [1], [2]]
    assert waves([two, two, two], [{"CPU": 4.0}], at_most=3) == [[0, 1], [2]]


def test_at_most_caps_a_wave():
    assert waves([ONE_CPU] * 3, [{"CPU": 8.0}], at_most=1) == [[0], [1], [2]]
    assert waves([ONE_CPU] * 3, [{"CPU": 8.0}], at_most=2) == [[0, 1], [2]]
    with pytest.raises(ValueError):
        waves([ONE_CPU], [{"CPU": 8.0}], at_most=0)


def test_a_worker_needs_its_whole_bundle_on_one_node():
    # 2 + 2 free CPUs on two nodes hold two 2-CPU workers, not one 3-CPU worker
    nodes = [{"CPU": 2.0}, {"CPU": 2.0}]
    assert place([{"CPU": 2.0}, {"CPU": 2.0}], nodes)
    assert not place([{"CPU": 3.0}], nodes)
    # a two-worker training across both nodes leaves no room for a third worker anywhere
    assert waves([[{"CPU": 2.0}] * 2, ONE_CPU], nodes, at_most=3) == [[0], [1]]


def test_custom_resources_and_gpus_decide_placement():
    nodes = [{"CPU": 16.0, "GPU": 1.0, "alma_worker": 1.0}, {"CPU": 16.0, "GPU": 1.0, "alma_worker": 1.0}]
    gpu = [{"CPU": 1.0, "GPU": 1.0}]
    assert waves([gpu, gpu, gpu], nodes, at_most=3) == [[0, 1], [2]]
    pinned = [{"CPU": 1.0, "alma_worker": 0.5}]
    assert waves([pinned] * 3, nodes, at_most=3) == [[0, 1, 2]]
    assert not place([{"CPU": 1.0, "alma_head": 1.0}], nodes), "a resource no node has never fits"


def test_a_training_too_big_for_the_cluster_still_gets_its_wave():
    assert waves([ONE_CPU, [{"CPU": 64.0}], ONE_CPU], [{"CPU": 4.0}], at_most=3) == [[0], [1], [2]]


def test_a_node_with_no_free_cpu_takes_nothing():
    assert waves([ONE_CPU, ONE_CPU], [{"CPU": 0.0}, {"CPU": 1.0}], at_most=3) == [[0], [1]]


POOL = [{"CPU": 0.5}, {"CPU": 0.5}, {"CPU": 0.05}]  # the generator's replica, one embedder, one caller


def test_reserve_leaves_what_the_bundles_do_not_take():
    left = reserve(POOL, [{"CPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}])
    assert left is not None and sum(n["CPU"] for n in left) == pytest.approx(5.0 - 1.05)
    assert reserve([{"CPU": 2.0}], [{"CPU": 1.0}, {"CPU": 1.0}]) is None  # a bundle never spans nodes
    assert reserve([{"GPU": 1.0}], [{"CPU": 8.0}]) is None


def test_the_pool_goes_beside_step_0_only_where_it_delays_no_training():
    three = [ONE_CPU] * 3
    # 5 CPUs: the three trainings and the pool all at once
    assert waves_beside(three, POOL, [{"CPU": 5.0}], at_most=3) == [[0, 1, 2]]
    # 4 CPUs: the pool would push the third training into a second wave, so it waits for step 0
    assert waves([ONE_CPU] * 3, [{"CPU": 4.0}], at_most=3) == [[0, 1, 2]]
    assert waves_beside(three, POOL, [{"CPU": 4.0}], at_most=3) is None
    # one training at a time (cluster.concurrent_trainings: 1): room beside each one is enough
    two = [{"CPU": 2.0}]
    assert waves_beside([two] * 3, POOL, [{"CPU": 4.0}], at_most=1) == [[0], [1], [2]]
    # a wave that fits the cluster only without the pool's share would wait for it: not beside
    assert waves_beside([two] * 3, POOL, [{"CPU": 2.0}], at_most=1) is None
    # the pool's replica needs a GPU that step 0's one-GPU workers leave none of
    gpu = [{"CPU": 1.0, "GPU": 1.0}]
    assert waves_beside([gpu] * 3, [{"CPU": 1.0, "GPU": 1.0}], [{"CPU": 8.0, "GPU": 3.0}], at_most=3) is None
    assert waves_beside([gpu] * 3, [{"CPU": 1.0, "GPU": 1.0}], [{"CPU": 8.0, "GPU": 4.0}], at_most=3) == [[0, 1, 2]]
