"""TransformersEngine on builtin:tiny: batched sampling, judge distributions and embeddings checked against
the model."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from alma.core.scoring import SCORE_LABELS
from alma.engines.base import Engine, Sampling
from alma.engines.transformers_engine import TransformersEngine

CHAT = [{"role": "user", "content": "Why is the sky blue?"}]
ANSWER_PREFIX = "Rating: [["
JUDGED = [
    [{"role": "user", "content": "Rate: the sky is blue because of Rayleigh scattering."}],
    [
        {"role": "system", "content": "You are a strict judge."},
        {"role": "user", "content": "Rate this much longer answer about photosynthesis and plants, please."},
    ],
    [{"role": "user", "content": "Rate: 2 + 2 = 5"}],
]


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> TransformersEngine:
    return TransformersEngine(tiny_model)


def test_engine_meets_the_contract(engine: TransformersEngine, tiny_model: Path):
    contract: Engine = engine
    assert contract.checkpoint == str(tiny_model)


def test_generate_shapes_for_raw_and_chat_prompts(engine: TransformersEngine):
    prompts = ["Once upon a time", CHAT, "The capital of France is"]
    out = engine.generate(prompts, n=2, sampling=Sampling(max_new_tokens=8, seed=0))
    assert len(out) == 3 and all(len(row) == 2 for row in out)
    for text in (text for row in out for text in row):
        assert isinstance(text, str)
        assert "<|im_end|>" not in text and "<|pad|>" not in text and "<|im_start|>" not in text


def test_raw_text_is_not_wrapped_in_the_chat_template(engine: TransformersEngine):
    tokenizer = engine.tokenizer
    assert engine._prompt_ids("Once upon a time") == tokenizer.encode("Once upon a time")
    chat_ids = engine._prompt_ids(CHAT)
    assert chat_ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert tokenizer.decode(chat_ids).endswith("<|im_start|>assistant\n")


def test_seeded_sampling_is_deterministic_and_seeds_differ(engine: TransformersEngine):
    prompts = ["Once upon a time", CHAT]
    first = engine.generate(prompts, n=3, sampling=Sampling(max_new_tokens=12, seed=7))
    assert engine.generate(prompts, n=3, sampling=Sampling(max_new_tokens=12, seed=7)) == first
    assert engine.generate(prompts, n=3, sampling=Sampling(max_new_tokens=12, seed=8)) != first
    # Samples of one prompt differ from each other too.
    assert len(set(first[0])) > 1


def test_seeded_call_leaves_the_global_rng_alone(engine: TransformersEngine):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    engine.generate(["Hello"], n=1, sampling=Sampling(max_new_tokens=2, seed=1))
    assert torch.equal(torch.rand(3), expected)


def test_chunked_batches_give_the_same_samples(tiny_model: Path, engine: TransformersEngine):
    # Greedy, so that the comparison does not depend on how the RNG stream is split across batches.
    prompts = ["Once upon a time", CHAT, "Water boils at"]
    sampling = Sampling(max_new_tokens=6, temperature=0.0)
    small = TransformersEngine(tiny_model, max_batch_size=1)
    assert small.generate(prompts, n=2, sampling=sampling) == engine.generate(prompts, n=2, sampling=sampling)


def test_greedy_returns_n_copies(engine: TransformersEngine):
    out = engine.generate([CHAT], n=3, sampling=Sampling(max_new_tokens=6, temperature=0.0, seed=1))
    assert len(out[0]) == 3 and len(set(out[0])) == 1
    again = engine.generate([CHAT], n=1, sampling=Sampling(max_new_tokens=6, temperature=0.0, seed=99))
    assert again == [[out[0][0]]]


def test_stop_strings_cut_the_text(engine: TransformersEngine):
    sampling = Sampling(max_new_tokens=16, temperature=0.0)
    [[full]] = engine.generate(["Once upon a time"], n=1, sampling=sampling)
    # A stop string taken from the middle of the unstopped output: the stopped output ends right before it.
    at = next(i for i in range(2, len(full) - 1) if full[i : i + 2].isascii() and full[i : i + 2].strip())
    stop = full[at : at + 2]
    stopped = Sampling(max_new_tokens=16, temperature=0.0, stop=("never-there", stop))
    assert engine.generate(["Once upon a time"], n=1, sampling=stopped) == [[full[: full.index(stop)]]]


def test_distribution_rows_are_probabilities(engine: TransformersEngine):
    dist = engine.score_distribution(JUDGED, ANSWER_PREFIX, SCORE_LABELS)
    assert len(dist) == len(JUDGED)
    for row in dist:
        assert len(row) == 11
        assert math.isclose(sum(row), 1.0, rel_tol=1e-9)
        assert all(p >= 0.0 for p in row)
    assert engine.score_distribution([], ANSWER_PREFIX, SCORE_LABELS) == []


def _path_logprob(engine: TransformersEngine, prefix: list[int], path: list[int]) -> float:
    """log P(path | prefix) from one unpadded forward pass, the plain way."""
    ids = torch.tensor([prefix + path])
    with torch.inference_mode():
        logprobs = engine.model(input_ids=ids).logits[0].float().log_softmax(dim=-1)
    return sum(logprobs[len(prefix) - 1 + depth, token].item() for depth, token in enumerate(path))


def _prefix_ids(engine: TransformersEngine, conversation: list[dict[str, str]]) -> list[int]:
    text = engine.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    return engine.tokenizer.encode(text + ANSWER_PREFIX)


def test_score_labels_tokenise_like_smollm2(engine: TransformersEngine):
    paths = engine._label_trie(ANSWER_PREFIX, SCORE_LABELS).paths
    one, zero = engine.tokenizer.convert_tokens_to_ids(["1", "0"])
    assert paths[10] == (one, zero) and paths[1] == (one,)


def test_distribution_matches_the_model_by_hand(engine: TransformersEngine):
    conversation = JUDGED[0]
    prefix = _prefix_ids(engine, conversation)
    digit = {label: engine.tokenizer.convert_tokens_to_ids(label) for label in SCORE_LABELS[:10]}
    p = {label: math.exp(_path_logprob(engine, prefix, [token])) for label, token in digit.items()}
    p_ten = math.exp(_path_logprob(engine, prefix, [digit["1"], digit["0"]]))
    exact = [p[label] for label in SCORE_LABELS[:10]] + [p_ten]
    exact[1] -= p_ten  # "1" then a stop, not "10"
    expected = [value / sum(exact) for value in exact]
    [dist] = engine.score_distribution([conversation], ANSWER_PREFIX, SCORE_LABELS)
    assert dist == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_multi_token_labels_on_two_chains_match_the_model(engine: TransformersEngine):
    # "1" < "10" < "100" nest; "xyzzy" takes four tokens on a chain of its own (two sequences).
    labels = ("1", "10", "100", "xyzzy")
    trie = engine._label_trie(ANSWER_PREFIX, labels)
    assert [len(path) for path in trie.paths] == [1, 2, 3, 4]
    conversation = JUDGED[1]
    prefix = _prefix_ids(engine, conversation)
    p = [math.exp(_path_logprob(engine, prefix, list(path))) for path in trie.paths]
    exact = [p[0] - p[1], p[1] - p[2], p[2], p[3]]
    expected = [value / sum(exact) for value in exact]
    [dist] = engine.score_distribution([conversation], ANSWER_PREFIX, labels)
    assert dist == pytest.approx(expected, rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("labels", [SCORE_LABELS, ("1", "10", "100", "xyzzy")])
def test_batched_distributions_equal_single_ones(tiny_model: Path, engine: TransformersEngine, labels):
    singles = [engine.score_distribution([conversation], ANSWER_PREFIX, labels)[0] for conversation in JUDGED]
    # Batches of 3 rows split a conversation's two sequences across forward passes.
    small = TransformersEngine(tiny_model, max_batch_size=3)
    for judge in (engine, small):
        for row, single in zip(judge.score_distribution(JUDGED, ANSWER_PREFIX, labels), singles, strict=True):
            assert row == pytest.approx(single, rel=1e-4, abs=1e-9)


def test_bad_settings_are_refused(tiny_model: Path, engine: TransformersEngine):
    with pytest.raises(ValueError):
        TransformersEngine(tiny_model, dtype="int8")
    with pytest.raises(ValueError):
        engine.generate(["Hi"], n=0, sampling=Sampling())
    with pytest.raises(ValueError):
        engine.generate([""], n=1, sampling=Sampling())


def test_embed_shape_dtype_and_pooling_by_hand(tiny_model: Path, engine: TransformersEngine):
    texts = ["Why is the sky blue?", "Name three rivers in Europe, please, and say which is longest.", "Hi"]
    hidden = engine.model.config.hidden_size
    vectors = engine.embed(texts, layer=-1, pooling="mean")
    assert vectors.shape == (3, hidden) and vectors.dtype == np.float32
    # A row does not depend on its batch-mates (padding is masked): one at a time, and batches of 2.
    small = TransformersEngine(tiny_model, max_batch_size=2)
    assert np.allclose(small.embed(texts), vectors, atol=1e-5)
    assert np.allclose(np.concatenate([engine.embed([t]) for t in texts]), vectors, atol=1e-5)
    ids = torch.tensor([engine._prompt_ids(texts[0])])
    with torch.inference_mode():
        states = engine.model(input_ids=ids, output_hidden_states=True).hidden_states
    assert np.allclose(engine.embed(texts[:1], layer=2, pooling="mean")[0], states[2][0].mean(0).numpy(), atol=1e-5)
    assert np.allclose(engine.embed(texts[:1], layer=-1, pooling="last")[0], states[-1][0, -1].numpy(), atol=1e-5)
    assert np.allclose(engine.embed(texts[:1], max_tokens=2)[0], states[-1][0, :2].mean(0).numpy(), atol=1e-5)
    with pytest.raises(ValueError):
        engine.embed(texts, pooling="max")
    with pytest.raises(ValueError):
        engine.embed(texts, layer=engine.model.config.num_hidden_layers + 1)
