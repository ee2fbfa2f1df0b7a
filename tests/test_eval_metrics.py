"""`alma eval`'s arithmetic: means, pairwise win rates with ties half, seeded bootstrap intervals (of means and
of ratios), and the best-of-N pick against a seeded random other answer."""

import math

import pytest

from alma.core.eval_metrics import best_and_other, bootstrap_ci, bootstrap_ratio_ci, mean, outcomes, win_rate


def test_mean_skips_nan():
    assert mean([1.0, 2.0, math.nan, 6.0]) == 3.0
    assert math.isnan(mean([])) and math.isnan(mean([math.nan]))


def test_win_rate_by_hand():
    # prompt:   1    2    3    4    5
    a = [7.0, 5.0, 3.0, 6.0, math.nan]
    b = [6.0, 5.0, 4.0, 2.0, 1.0]
    # win, tie, loss, win, unscored -> (1 + 0.5 + 0 + 1 + 0.5) / 5 = 0.6
    assert outcomes(a, b) == [1.0, 0.5, 0.0, 1.0, 0.5]
    w = win_rate(a, b)
    assert (w.wins, w.losses, w.ties, w.unscored, w.prompts) == (2, 1, 1, 1, 5)
    assert w.rate == pytest.approx(0.6)
    assert win_rate(b, a).rate == pytest.approx(0.4), "A vs B and B vs A add up to 1"


def test_win_rate_edges():
    assert win_rate([1.0, 2.0], [1.0, 2.0]).rate == 0.5, "a model against itself"
    assert win_rate([3.0] * 4, [1.0] * 4).rate == 1.0
    assert math.isnan(win_rate([], []).rate)
    with pytest.raises(ValueError, match="length"):
        win_rate([1.0], [1.0, 2.0])


def test_bootstrap_contains_the_estimate_and_is_seeded():
    values = [0.0, 1.0, 0.5, 1.0, 1.0, 0.0, 1.0, 0.5, 1.0, 1.0]
    low, high = bootstrap_ci(values, resamples=2000, confidence=0.95, seed=3)
    assert low <= mean(values) <= high and 0.0 <= low < high <= 1.0
    assert bootstrap_ci(values, 2000, 0.95, seed=3) == (low, high)
    assert bootstrap_ci(values, 2000, 0.95, seed=4) != (low, high)
    narrow = bootstrap_ci(values, 2000, 0.5, seed=3)
    assert low <= narrow[0] <= narrow[1] <= high, "a lower level gives a narrower interval"
    for seed in range(30):
        scores = [((seed * 13 + i * 7) % 11) / 1.0 for i in range(8)]
        lo, hi = bootstrap_ci(scores, 500, 0.95, seed)
        assert lo <= mean(scores) <= hi


def test_bootstrap_by_hand():
    # Every value equal: every resample has that mean.
    assert bootstrap_ci([4.0, 4.0, 4.0]) == (4.0, 4.0)
    # Two values 0 and 1: a resample's mean is 0, 0.5 or 1 (p = 1/4, 1/2, 1/4), so the 95% interval is [0, 1]
    # and the 40% interval (30th..70th percentiles) is [0.5, 0.5].
    assert bootstrap_ci([0.0, 1.0], resamples=4000, confidence=0.95, seed=1) == (0.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], resamples=4000, confidence=0.4, seed=1) == (0.5, 0.5)
    assert bootstrap_ci([1.0, math.nan]) == (1.0, 1.0), "NaN left out"
    assert all(math.isnan(x) for x in bootstrap_ci([math.nan]))
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], confidence=1.0)


def test_ratio_bootstrap_by_hand():
    # Prompts with 1, 2 and 3 constraints, of which 1, 0 and 3 are met: 4/6 overall. Every prompt at the
    # same ratio gives a point interval.
    assert bootstrap_ratio_ci([2.0, 2.0], [2.0, 2.0]) == (1.0, 1.0)
    low, high = bootstrap_ratio_ci([1.0, 0.0, 3.0], [1.0, 2.0, 3.0], resamples=4000, confidence=0.95, seed=2)
    assert 0.0 <= low < 4 / 6 < high <= 1.0
    assert bootstrap_ratio_ci([1.0, 0.0, 3.0], [1.0, 2.0, 3.0], 4000, 0.95, 2) == (low, high), "seeded"
    assert all(math.isnan(x) for x in bootstrap_ratio_ci([0.0, 1.0], [0.0, 0.0])), "no constraint: no ratio"
    assert all(math.isnan(x) for x in bootstrap_ratio_ci([], []))
    with pytest.raises(ValueError, match="length"):
        bootstrap_ratio_ci([1.0], [1.0, 2.0])


def test_best_and_a_random_other():
    assert best_and_other([3.0, 7.0, 5.0], seed=1)[0] == 1
    assert best_and_other([7.0, 7.0, 5.0], seed=1)[0] == 0, "ties go to the first, as best-of-N breaks them"
    assert best_and_other([math.nan, 2.0], seed=1) == (1, 0), "NaN is no score, but it may be the random pick"
    assert best_and_other([4.0], seed=1) is None and best_and_other([math.nan, math.nan], seed=1) is None
    others = {best_and_other([9.0, 1.0, 2.0, 3.0], seed=s)[1] for s in range(40)}
    assert others == {1, 2, 3}, "any other answer, never the best"
    assert best_and_other([9.0, 1.0, 2.0, 3.0], seed="x") == best_and_other([9.0, 1.0, 2.0, 3.0], seed="x")
