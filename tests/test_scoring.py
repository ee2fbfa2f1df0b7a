"""core.scoring: label tries, context grouping, exact-label probabilities and score parsing."""

import math

import pytest

from alma.core.scoring import (
    SCORE_LABELS,
    LabelTrie,
    argmax_score,
    context_sequences,
    expected_score,
    label_distribution,
    parse_bracket_score,
    queries,
)

# Token ids for digits in a made-up vocabulary: "0" -> 100, ..., "9" -> 109.
DIGIT = {str(d): 100 + d for d in range(10)}


def single_token_trie() -> LabelTrie:
    # "10" is its own token (id 110), as in tokenizers that merge digit pairs.
    return LabelTrie.from_paths({label: [DIGIT.get(label, 110)] for label in SCORE_LABELS})


def digit_split_trie() -> LabelTrie:
    return LabelTrie.from_paths({label: [DIGIT[ch] for ch in label] for label in SCORE_LABELS})


def logprobs_from(probs: dict[tuple[int, ...], dict[int, float]]) -> dict[tuple[int, ...], dict[int, float]]:
    return {context: {token: math.log(p) for token, p in row.items()} for context, row in probs.items()}


def test_single_token_labels_need_only_the_prompt():
    trie = single_token_trie()
    assert context_sequences(trie) == [()]
    assert queries(trie) == {(): tuple(sorted([*DIGIT.values(), 110]))}
    probs = {(): {token: 0.05 for token in queries(trie)[()]}}
    probs[()][DIGIT["7"]] = 0.5
    dist = label_distribution(trie, logprobs_from(probs))
    assert len(dist) == 11
    assert math.isclose(sum(dist), 1.0)
    # Every label's mass is its own token's: 0.5 against ten times 0.05, renormalised.
    assert math.isclose(dist[7], 0.5 / 1.0)
    assert math.isclose(dist[10], 0.05 / 1.0)


def test_digit_split_ten_is_one_chain_and_subtracts_from_one():
    trie = digit_split_trie()
    assert trie.paths[10] == (DIGIT["1"], DIGIT["0"])
    # One forward pass over prompt + "1" reads both the first token and the token after "1".
    assert context_sequences(trie) == [(DIGIT["1"],)]
    assert queries(trie)[(DIGIT["1"],)] == (DIGIT["0"],)

    first = {token: 0.02 for token in DIGIT.values()}
    first[DIGIT["1"]] = 0.4
    first[DIGIT["9"]] = 0.3
    # After "1", "0" follows with 0.75: P("10") = 0.3, P("1" exactly) = 0.1.
    dist = label_distribution(trie, logprobs_from({(): first, (DIGIT["1"],): {DIGIT["0"]: 0.75}}))
    total = 0.02 * 8 + 0.1 + 0.3 + 0.3
    assert math.isclose(dist[1], 0.1 / total)
    assert math.isclose(dist[10], 0.3 / total)
    assert math.isclose(dist[9], 0.3 / total)
    assert math.isclose(sum(dist), 1.0)


def test_labels_with_different_first_tokens_need_two_sequences():
    # A weird tokenizer: "10" = "1","0" and "7" = "<7a>","<7b>" (two chains from the root).
    paths = {label: [DIGIT[label]] for label in SCORE_LABELS[:10]}
    paths["7"] = [70, 71]
    paths["10"] = [DIGIT["1"], DIGIT["0"]]
    trie = LabelTrie.from_paths(paths)
    assert context_sequences(trie) == [(70,), (DIGIT["1"],)]
    assert set(queries(trie)) == {(), (DIGIT["1"],), (70,)}

    first = {token: 0.05 for token in queries(trie)[()]}
    first[70] = 0.2
    dist = label_distribution(
        trie, logprobs_from({(): first, (DIGIT["1"],): {DIGIT["0"]: 0.5}, (70,): {71: 0.5}})
    )
    # "7" is the whole path 0.2 * 0.5; "1" and "10" split the 0.05 of "1".
    weights = {label: 0.05 for label in SCORE_LABELS}
    weights.update({"7": 0.1, "1": 0.025, "10": 0.025})
    total = sum(weights.values())
    assert dist == pytest.approx([weights[label] / total for label in SCORE_LABELS])


def test_only_nearest_label_children_are_subtracted():
    # "1" < "10" < "100": "100"'s mass sits inside "10"'s and must not be taken off "1" twice.
    trie = LabelTrie.from_paths({"1": [1], "10": [1, 0], "100": [1, 0, 0], "2": [2]})
    assert context_sequences(trie) == [(1, 0)]
    dist = label_distribution(trie, logprobs_from({(): {1: 0.8, 2: 0.2}, (1,): {0: 0.5}, (1, 0): {0: 0.5}}))
    assert dist == pytest.approx([0.4, 0.2, 0.2, 0.2])


def test_negative_mass_is_clamped_before_renormalising():
    # Rounding can make the child's mass exceed its parent's by a hair: "1" must read 0, not < 0.
    trie = LabelTrie.from_paths({"1": [1], "10": [1, 0], "2": [2]})
    logprobs = {(): {1: math.log(0.5), 2: math.log(0.5)}, (1,): {0: 1e-12}}
    dist = label_distribution(trie, logprobs)
    assert dist[0] == 0.0
    assert dist == pytest.approx([0.0, 0.5, 0.5])
    assert all(p >= 0.0 for p in dist)


def test_renormalises_over_labels_only():
    trie = single_token_trie()
    # Labels hold 1% of the mass in total (the model mostly wants to write something else).
    probs = {(): {token: 0.01 / 11 for token in queries(trie)[()]}}
    dist = label_distribution(trie, logprobs_from(probs))
    assert dist == pytest.approx([1 / 11] * 11)


def test_no_label_mass_falls_back_to_uniform():
    trie = single_token_trie()
    logprobs = {(): {token: -math.inf for token in queries(trie)[()]}}
    assert label_distribution(trie, logprobs) == [1 / 11] * 11


def test_bad_label_sets_are_refused():
    with pytest.raises(ValueError):
        LabelTrie.from_paths({})
    with pytest.raises(ValueError):
        LabelTrie.from_paths({"1": []})
    with pytest.raises(ValueError):
        LabelTrie.from_paths({"1": [5], "one": [5]})


def test_expected_and_argmax_score():
    dist = [0.0] * 11
    dist[3], dist[10] = 0.5, 0.5
    assert expected_score(dist) == pytest.approx(6.5)
    assert argmax_score(dist) == 3  # a tie goes to the lower label
    dist[10] = 0.6
    assert argmax_score(dist) == 10
    assert expected_score([1 / 11] * 11) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        expected_score([1.0])


@pytest.mark.parametrize(
    "text, score",
    [
        ("Rating: [[7]]", 7),
        ("[[10]] is my verdict", 10),
        ("[[0]]", 0),
        ("first [[3]] then [[9]]", 3),
        ("[[ 4 ]]", 4),
        ("no score here", None),
        ("[[11]]", None),
        ("[[-1]]", None),
        ("[[7.5]]", None),
        ("[7]", None),
        ("", None),
    ],
)
def test_parse_bracket_score(text, score):
    assert parse_bracket_score(text) == score
