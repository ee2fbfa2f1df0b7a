"""TransformersEngine on builtin:tiny: its numbers checked by hand against the model's forward pass, and
what only this engine has (batch chunking, torch's global RNG). The contract cases shared with every engine
are in test_engine_contract.py, which checks the other engines against this one."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine_cases import ANSWER_PREFIX, CHAT, DEVICE, JUDGED

from alma.core.engine_api import Sampling
from alma.core.scoring import SCORE_LABELS
from alma.engines.transformers_engine import TransformersEngine



@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> TransformersEngine:
    return TransformersEngine(tiny_model, device=DEVICE)


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
    small = TransformersEngine(tiny_model, max_batch_size=1, device=DEVICE)
    assert small.generate(prompts, n=2, sampling=sampling) == engine.generate(prompts, n=2, sampling=sampling)


def _path_logprob(engine: TransformersEngine, prefix: list[int], path: list[int]) -> float:
    """log P(path | prefix) from one unpadded forward pass, the plain way."""
    ids = torch.tensor([prefix + path], device=engine.device)
    with torch.inference_mode():
        logprobs = engine.model(input_ids=ids).logits[0].float().log_softmax(dim=-1).cpu()
    return sum(logprobs[len(prefix) - 1 + depth, token].item() for depth, token in enumerate(path))


def _prefix_ids(engine: TransformersEngine, conversation: list[dict[str, str]]) -> list[int]:
    text = engine.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    return engine.tokenizer.encode(text + ANSWER_PREFIX)


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
    trie = engine.encoder.label_trie(ANSWER_PREFIX, labels)
    assert [len(path) for path in trie.paths] == [1, 2, 3, 4]
    conversation = JUDGED[1]
    prefix = _prefix_ids(engine, conversation)
    p = [math.exp(_path_logprob(engine, prefix, list(path))) for path in trie.paths]
    exact = [p[0] - p[1], p[1] - p[2], p[2], p[3]]
    expected = [value / sum(exact) for value in exact]
    [dist] = engine.score_distribution([conversation], ANSWER_PREFIX, labels)
    assert dist == pytest.approx(expected, rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("labels", [SCORE_LABELS, ("1", "10", "100", "xyzzy")])
def test_chunked_distributions_equal_single_ones(tiny_model: Path, engine: TransformersEngine, labels):
    singles = [engine.score_distribution([conversation], ANSWER_PREFIX, labels)[0] for conversation in JUDGED]
    # Batches of 3 rows split a conversation's two sequences across forward passes.
    small = TransformersEngine(tiny_model, max_batch_size=3, device=DEVICE)
    for judge in (engine, small):
        for row, single in zip(judge.score_distribution(JUDGED, ANSWER_PREFIX, labels), singles, strict=True):
            assert row == pytest.approx(single, rel=1e-4, abs=1e-9)


def test_bad_settings_are_refused(tiny_model: Path):
    with pytest.raises(ValueError):
        TransformersEngine(tiny_model, dtype="int8")


def test_embed_shape_dtype_and_pooling_by_hand(tiny_model: Path, engine: TransformersEngine):
    texts = ["Why is the sky blue?", "Name three rivers in Europe, please, and say which is longest.", "Hi"]
    hidden = engine.model.config.hidden_size
    vectors = engine.embed(texts, layer=-1, pooling="mean")
    assert vectors.shape == (3, hidden) and vectors.dtype == np.float32
    # A row does not depend on its batch-mates (padding is masked): one at a time, and batches of 2.
    small = TransformersEngine(tiny_model, max_batch_size=2, device=DEVICE)
    assert np.allclose(small.embed(texts), vectors, atol=1e-5)
    assert np.allclose(np.concatenate([engine.embed([t]) for t in texts]), vectors, atol=1e-5)
    ids = torch.tensor([engine.encoder.prompt_ids(texts[0])], device=engine.device)
    with torch.inference_mode():
        states = [state.cpu() for state in engine.model(input_ids=ids, output_hidden_states=True).hidden_states]
    assert np.allclose(engine.embed(texts[:1], layer=2, pooling="mean")[0], states[2][0].mean(0).numpy(), atol=1e-5)
    assert np.allclose(engine.embed(texts[:1], layer=-1, pooling="last")[0], states[-1][0, -1].numpy(), atol=1e-5)
    assert np.allclose(engine.embed(texts[:1], max_tokens=2)[0], states[-1][0, :2].mean(0).numpy(), atol=1e-5)
    with pytest.raises(ValueError):
        engine.embed(texts, pooling="max")
    with pytest.raises(ValueError):
        engine.embed(texts, layer=engine.model.config.num_hidden_layers + 1)
