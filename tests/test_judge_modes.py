"""core.judge_modes: the three scoring modes, pure parsing/missing accounting and on the tiny engine."""

import math
from pathlib import Path

import pytest

from alma.core.judge_modes import Judgment, batch_seed, check_mode, from_distribution, from_samples, judge
from alma.core.judge_prompt import LABELS, SCALE, judge_messages
from alma.core.scoring import argmax_score, expected_score

PREFIX = "Rating: [["


def test_distribution_modes():
    dist = [0.0] * 11
    dist[3] = dist[7] = 0.5
    assert from_distribution(dist, "expected") == Judgment(5.0, dist, "expected", 0)
    assert from_distribution(dist, "argmax") == Judgment(3.0, dist, "argmax", 0), "the lowest label on a tie"
    with pytest.raises(ValueError):
        from_distribution(dist, "sampled")
    with pytest.raises(ValueError):
        check_mode("median")


def test_sampled_replies_are_parsed_after_the_prefix_and_failures_counted():
    # "7]]" closes the prefix's brackets; "[[9]]" writes its own; "11]]" is out of range; the rest hold no score.
    judgment = from_samples(["7]]", "8]] because it is clear", "garbage", "[[9]]", "11]]", "7"], PREFIX)
    assert judgment.score == 8.0 and judgment.missing == 3 and judgment.mode == "sampled"
    assert judgment.distribution[7] == judgment.distribution[8] == judgment.distribution[9] == pytest.approx(1 / 6)
    assert sum(judgment.distribution) == pytest.approx(1 - 3 / 6)


def test_all_samples_failing_gives_nan_never_a_score():
    judgment = from_samples(["", "no idea", "seven"], PREFIX)
    assert math.isnan(judgment.score) and judgment.missing == 3 and sum(judgment.distribution) == 0
    assert from_samples(["10]]"], "Rating:").missing == 1, "a prefix without brackets needs them in the reply"
    assert from_samples([" [[10]]"], "Rating:").score == 10.0
    with pytest.raises(ValueError):
        from_samples([], PREFIX)


def test_batch_seed_is_stable():
    assert batch_seed(["a", "b"]) == batch_seed(["a", "b"]) != batch_seed(["ab"])


CONVERSATIONS = [judge_messages("What is 2 + 2?", "4", SCALE), judge_messages("Name a colour.", "Blue.", SCALE),
                 judge_messages("Say hi.", "Pythons are snakes.", SCALE)]


@pytest.fixture(scope="module")
def engine(tiny_model: Path):
    from alma.engines.transformers_engine import TransformersEngine

    return TransformersEngine(tiny_model)


def test_expected_and_argmax_read_the_engine_distribution(engine):
    dists = engine.score_distribution(CONVERSATIONS, PREFIX, LABELS)
    expected = judge(engine, CONVERSATIONS, PREFIX, "expected")
    argmax = judge(engine, CONVERSATIONS, PREFIX, "argmax")
    for dist, e, a in zip(dists, expected, argmax, strict=True):
        assert e.score == pytest.approx(expected_score(dist)) and e.missing == 0
        assert a.score == argmax_score(dist) and a.score == int(a.score)
        assert e.distribution == pytest.approx(dist) and a.mode == "argmax"


def test_sampled_mode_on_the_engine_accounts_for_every_sample(engine):
    k = 4
    first = judge(engine, CONVERSATIONS, PREFIX, "sampled", samples=k, seed=11)
    assert judge(engine, CONVERSATIONS, PREFIX, "sampled", samples=k, seed=11) == first, "seeded: reproducible"
    for j in first:
        parsed = round(sum(j.distribution) * k)
        assert parsed + j.missing == k
        assert math.isnan(j.score) == (j.missing == k)
        if parsed:
            assert j.score == pytest.approx(sum(v * p for v, p in enumerate(j.distribution)) * k / parsed)


def test_render_chat_is_what_the_judge_continues(engine):
    text = engine.render_chat(CONVERSATIONS[0])
    assert text.endswith("<|im_start|>assistant\n") and "What is 2 + 2?" in text
