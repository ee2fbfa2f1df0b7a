"""core.judge_metrics: pairwise accuracy with ties and missing scores, average ranks, Spearman."""

import math

import pytest

from alma.core.judge_metrics import Scored, average_ranks, judge_metrics, pairwise, pearson, spearman

NAN = math.nan


def rows(*triplets):
    return [Scored(prompt, human, judged) for prompt, human, judged in triplets]


def test_pairwise_by_hand():
    result = pairwise(rows(
        ("A", 8, 7.5), ("A", 3, 2.0),   # ordered like people: 1
        ("B", 9, 5.0), ("B", 2, 5.0),   # judge tie: 0.5, a tie
        ("C", 6, 1.0), ("C", 4, 9.0),   # reversed: 0
        ("D", 5, 3.0), ("D", 5, 4.0),   # people tie: not a pair
        ("E", 7, NAN), ("E", 1, 2.0),   # no judge score: 0.5, unscored, not a tie
    ))
    assert (result.pairs, result.credit, result.ties, result.unscored) == (4, 2.0, 1, 1)
    assert result.accuracy == 0.5 and result.tie_rate == 0.25


def test_pairwise_compares_every_pair_of_a_prompt_and_never_across_prompts():
    result = pairwise(rows(("F", 1, 2.0), ("F", 5, 2.0), ("F", 9, 8.0), ("G", 0, 10.0)))
    # (1,5) judge tie, (1,9) right, (5,9) right; G's lone response pairs with nothing.
    assert (result.pairs, result.credit, result.ties) == (3, 2.5, 1)
    assert result.accuracy == pytest.approx(2.5 / 3)


def test_no_pairs_gives_nan_not_a_division_error():
    result = pairwise(rows(("A", 5, 1.0), ("A", 5, 2.0)))
    assert result.pairs == 0 and math.isnan(result.accuracy) and math.isnan(result.tie_rate)


def test_average_ranks_share_tied_ranks():
    assert average_ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]
    assert average_ranks([3, 3, 3]) == [2.0, 2.0, 2.0]
    assert average_ranks([]) == []


def test_spearman_known_values():
    # scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == 0.8207826816681233 (a tie in y).
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233, abs=1e-12)
    # No ties: 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 4 / 120.
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [1, 4, 9]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [9, 4, 1]) == pytest.approx(-1.0)


def test_undefined_correlations_are_nan():
    assert math.isnan(spearman([1, 2, 3], [4, 4, 4]))
    assert math.isnan(spearman([1], [2]))
    with pytest.raises(ValueError):
        pearson([1, 2], [1])


def test_judge_metrics_drop_missing_scores_from_spearman_only():
    metrics = judge_metrics(rows(("A", 8, 9.0), ("A", 3, 2.0), ("B", 6, NAN), ("B", 1, 1.0)))
    assert (metrics.triplets, metrics.scored, metrics.pairs, metrics.unscored_pairs) == (4, 3, 2, 1)
    assert metrics.pairwise_accuracy == 0.75 and metrics.ties == 0 and metrics.tie_rate == 0.0
    assert metrics.spearman == pytest.approx(spearman([8, 3, 1], [9.0, 2.0, 1.0]))
