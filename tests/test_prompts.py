"""Few-shot request text, reply parsing, filters, funnel and de-duplication."""

import random

from alma.core.prompts import (
    FILTERS,
    ITEM_PREFIX,
    PromptFilter,
    few_shot_request,
    normalize,
    parse_reply,
    prompt_id,
    sample_few_shot,
)


def test_request_ends_with_open_item_and_lists_examples():
    text = few_shot_request(["Write a poem.", "Explain  gravity\nbriefly."])
    assert text.endswith("\n" + ITEM_PREFIX)
    assert "Request: Explain gravity briefly." in text


def test_sample_few_shot_distinct_and_bounded():
    rng = random.Random(0)
    picks = sample_few_shot(["a", "b", "c", "d"], 3, rng)
    assert len(set(picks)) == 3
    assert sorted(sample_few_shot(["a", "b"], 5, rng)) == ["a", "b"]


def test_parse_reply_first_line_and_prefix():
    assert parse_reply(" How do magnets work?\nRequest: next one") == "How do magnets work?"
    assert parse_reply("Request: Name three rivers.") == "Name three rivers."
    assert parse_reply("\nsecond line") == ""


def test_normalize_and_ids_merge_trivial_variants():
    assert normalize("  Hello,   WORLD! ") == "hello world"
    assert prompt_id("What is rain?") == prompt_id("what is rain") != prompt_id("what is snow")


def test_filter_reasons_and_funnel():
    f = PromptFilter(min_chars=5, max_chars=30, min_letter_ratio=0.6, blocked={normalize("Seed prompt here")})
    cases = [
        ("", "empty"), ("!!!", "empty"), ("Hi?", "too_short"), ("x" * 31, "too_long"),
        ("1234 5678 90 = ?", "non_text"), ("seed prompt here!", "copies_example"),
        ("Tell me a joke", None), ("tell me a joke.", "duplicate"),
    ]
    for text, why in cases:
        assert f.reason(text) == why, text
    assert f.reason("Example given here", examples=["example given here"]) == "copies_example"

    g = PromptFilter(min_chars=5, max_chars=30, min_letter_ratio=0.6)
    for text in ["", "Hi?", "Tell me a joke", "tell me a joke", "Name a color"]:
        g.keep(text)
    funnel = g.funnel(5)
    assert funnel["attempts"] == 5 and funnel["after_duplicate"] == g.kept == 2
    assert list(funnel)[1:] == [f"after_{n}" for n in FILTERS]
    assert funnel["after_empty"] == 4 and funnel["after_too_short"] == 3
