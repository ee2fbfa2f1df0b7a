"""core.distill: which synthetic pairs the judge labels, and the stochastically rounded targets."""

import random
import statistics

import pytest

from alma.core.distill import pick_responses, stochastic_round


def responses():
    return [{"prompt_id": f"p{p}", "checkpoint": c, "sample": s, "response": f"{p}{c}{s}"}
            for p in range(4) for c in ("sft-1", "sft-2") for s in range(3)]


def test_pick_responses_is_seeded_and_order_free():
    rows = responses()
    picked = pick_responses(rows, 5, seed=3)
    assert len(picked) == 5 and len({r["response"] for r in picked}) == 5
    shuffled = list(rows)
    random.Random(0).shuffle(shuffled)
    assert pick_responses(shuffled, 5, seed=3) == picked
    assert pick_responses(rows, 5, seed=4) != picked
    assert len(pick_responses(rows, 100, seed=3)) == len(rows), "all of them when there are fewer"


def test_stochastic_round_is_unbiased_and_fixed_per_key():
    assert stochastic_round(7.0, "k") == 7 and stochastic_round(10.0, "k") == 10 and stochastic_round(0.0, "k") == 0
    targets = [stochastic_round(7.3, f"pair-{i}") for i in range(4000)]
    assert set(targets) == {7, 8}
    assert statistics.mean(targets) == pytest.approx(7.3, abs=0.03)
    assert [stochastic_round(7.3, f"pair-{i}") for i in range(50)] == targets[:50]
    with pytest.raises(ValueError):
        stochastic_round(10.5, "k")


def test_sample_label_follows_the_distribution_and_is_fixed_per_key():
    from alma.core.distill import sample_label

    bimodal = [0.05, 0.05, 0, 0, 0.25, 0, 0, 0, 0.65, 0, 0]
    labels = [sample_label(bimodal, f"pair-{i}") for i in range(4000)]
    assert set(labels) <= {0, 1, 4, 8}, "never a label the teacher gave no mass"
    assert abs(labels.count(8) / 4000 - 0.65) < 0.03 and abs(labels.count(4) / 4000 - 0.25) < 0.03
    # The rounded mean of the same teacher (about 6.3) is 6 or 7: labels it never gave.
    mean = sum(i * p for i, p in enumerate(bimodal))
    assert {stochastic_round(mean, f"pair-{i}") for i in range(200)} == {6, 7}
    assert [sample_label(bimodal, f"pair-{i}") for i in range(50)] == labels[:50]
    assert sample_label([0, 0, 2.0], "k") == 2, "renormalised"
    for bad in ([], [0, 0], [0.5, -0.1], [float("nan"), 1.0]):
        with pytest.raises(ValueError):
            sample_label(bad, "k")
