"""Few-shot request text, reply parsing, filters, funnel, exact and near de-duplication."""

import random

from alma.core.near_dup import NearDuplicateIndex
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

    g = PromptFilter(min_chars=5, max_chars=40, min_letter_ratio=0.6, near_dup=NearDuplicateIndex(0.7))
    texts = ["", "Hi?", "Tell me a joke about cats", "tell me a joke about cats", "Name a color",
             "Tell me a joke about cats please"]
    for text in texts:
        g.keep(text)
    funnel = g.funnel(len(texts))
    assert list(funnel)[1:] == [f"after_{n}" for n in FILTERS]
    assert funnel["attempts"] == 6 and funnel["after_empty"] == 5 and funnel["after_too_short"] == 4
    assert funnel["after_duplicate"] == 3 and funnel["after_near_duplicate"] == g.kept == 2


def test_near_duplicates_of_kept_and_seed_prompts_are_dropped():
    seed = "Explain how a rainbow forms in the sky"
    f = PromptFilter(min_chars=5, max_chars=200, min_letter_ratio=0.6, blocked={normalize(seed)},
                     near_dup=NearDuplicateIndex(0.7))
    assert f.reason("Explain how a rainbow forms in the sky today") == "near_duplicate", "near-copies a seed"
    assert f.reason("Write a short story about a lighthouse keeper and his dog") is None
    assert f.reason("Write a short story about a lighthouse keeper and his old dog") == "near_duplicate"
    assert f.reason("Write a short story about a baker who cannot smell") is None, "shares a prefix only"
    plain = PromptFilter(min_chars=5, max_chars=200, min_letter_ratio=0.6)
    assert plain.reason("Write a story about a dog") is None and plain.reason("Write a story about a dog!!") \
        == "duplicate", "without an index only exact duplicates go"
