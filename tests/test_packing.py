"""core.packing: which of step 0's trainings start together, from the nodes' free resources alone."""

import pytest

from alma.core.packing import place, waves

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
