"""The engine contract (core/engine_api.py), the same cases for every engine, on builtin:tiny.

Each engine is built once per module (a vLLM engine start costs 20-60 s on 2 cores). The vLLM cases run
wherever vLLM imports and runs on the test device, and are skipped with the reason elsewhere. The device
is ALMA_TEST_DEVICE (default cpu; benchmarks/gpu_check.sh sets cuda). Nothing here needs Ray.
"""

import asyncio
import math
import os
from pathlib import Path

import numpy as np
import pytest

from engine_cases import ANSWER_PREFIX, CHAT, DEVICE, JUDGED

from alma.core.engine_api import ConcurrentEngine, Sampling
from alma.core.scoring import SCORE_LABELS

# "1" < "10" < "100" nest; "xyzzy" takes four tokens on a chain of its own.
NESTED_LABELS = ("1", "10", "100", "xyzzy")


def _build(kind: str, checkpoint: Path):
    if kind == "transformers":
        from alma.engines.transformers_engine import TransformersEngine

        return TransformersEngine(checkpoint, device=DEVICE)
    from alma.engines.factory import vllm_platform

    platform, problem = vllm_platform()
    if problem is None and platform != DEVICE:
        problem = f"the installed vLLM build runs on {platform}, the tests on {DEVICE}"
    if problem is not None:
        pytest.skip(f"vLLM engine not tested: {problem}")
    from alma.engines.vllm_engine import VllmEngine

    # The tiny model's whole 1024-token context needs 8 MiB of KV cache; 1/8 GiB is plenty.
    return VllmEngine(checkpoint, device=DEVICE, threads=os.cpu_count(), kv_cache_gib=0.125)


@pytest.fixture(scope="module", params=["transformers", pytest.param("vllm", marks=pytest.mark.slow)])
def engine(request: pytest.FixtureRequest, tiny_model: Path):
    built = _build(request.param, tiny_model)
    yield built
    built.close()


@pytest.fixture(scope="module")
def reference(tiny_model: Path):
    """The transformers engine on the CPU in float32: what every engine's numbers are checked against.

    Its own numbers are checked by hand, forward pass by forward pass, in test_transformers_engine.py.
    """
    from alma.engines.transformers_engine import TransformersEngine

    return TransformersEngine(tiny_model)


def test_engine_holds_its_checkpoint(engine, tiny_model: Path):
    assert engine.checkpoint == str(tiny_model)


def test_generate_shapes_for_raw_and_chat_prompts(engine):
    prompts = ["Once upon a time", CHAT, "The capital of France is"]
    out = engine.generate(prompts, n=2, sampling=Sampling(max_new_tokens=8, seed=0))
    assert len(out) == 3 and all(len(row) == 2 for row in out)
    for text in (text for row in out for text in row):
        assert isinstance(text, str)
        assert "<|im_end|>" not in text and "<|pad|>" not in text and "<|im_start|>" not in text


def test_raw_text_is_not_wrapped_in_the_chat_template(engine):
    tokenizer = engine.encoder.tokenizer
    assert engine.encoder.prompt_ids("Once upon a time") == tokenizer.encode("Once upon a time")
    chat_ids = engine.encoder.prompt_ids(CHAT)
    assert chat_ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert tokenizer.decode(chat_ids).endswith("<|im_start|>assistant\n")
    assert engine.render_chat(CHAT) == tokenizer.decode(chat_ids)


def test_seeded_sampling_is_deterministic_and_seeds_differ(engine):
    prompts = ["Once upon a time", CHAT]
    first = engine.generate(prompts, n=3, sampling=Sampling(max_new_tokens=12, seed=7))
    assert engine.generate(prompts, n=3, sampling=Sampling(max_new_tokens=12, seed=7)) == first
    assert engine.generate(prompts, n=3, sampling=Sampling(max_new_tokens=12, seed=8)) != first
    # Samples of one prompt differ from each other too.
    assert len(set(first[0])) > 1


def test_seeded_prompts_longer_than_one_engine_step(engine):
    """Prompts that together overflow one scheduling step (vLLM: 4096 tokens), sampled with a seed."""
    prompts = [f"Story {i}: " + "the quick brown fox jumps over the lazy dog " * 60 for i in range(8)]
    assert sum(len(engine.encoder.prompt_ids(p)) for p in prompts) > 4096
    first = engine.generate(prompts, n=2, sampling=Sampling(max_new_tokens=4, seed=5))
    assert len(first) == 8 and all(len(row) == 2 for row in first)
    assert engine.generate(prompts, n=2, sampling=Sampling(max_new_tokens=4, seed=5)) == first


def test_greedy_returns_n_copies(engine):
    out = engine.generate([CHAT], n=3, sampling=Sampling(max_new_tokens=6, temperature=0.0, seed=1))
    assert len(out[0]) == 3 and len(set(out[0])) == 1
    again = engine.generate([CHAT], n=1, sampling=Sampling(max_new_tokens=6, temperature=0.0, seed=99))
    assert again == [[out[0][0]]]


def test_stop_strings_cut_the_text(engine):
    sampling = Sampling(max_new_tokens=16, temperature=0.0)
    [[full]] = engine.generate(["Once upon a time"], n=1, sampling=sampling)
    # A stop string taken from the middle of the unstopped output: the stopped output ends right before it.
    at = next(i for i in range(2, len(full) - 1) if full[i : i + 2].isascii() and full[i : i + 2].strip())
    stop = full[at : at + 2]
    stopped = Sampling(max_new_tokens=16, temperature=0.0, stop=("never-there", stop))
    assert engine.generate(["Once upon a time"], n=1, sampling=stopped) == [[full[: full.index(stop)]]]


def test_distribution_rows_are_probabilities_over_all_11_labels(engine):
    dist = engine.score_distribution(JUDGED, ANSWER_PREFIX, SCORE_LABELS)
    assert len(dist) == len(JUDGED)
    for row in dist:
        assert len(row) == 11
        assert math.isclose(sum(row), 1.0, rel_tol=1e-9)
        assert all(p >= 0.0 for p in row)
        # A random-init model spreads its mass: every label, "10" included, gets some of it.
        assert all(p > 0.0 for p in row)
    assert engine.score_distribution([], ANSWER_PREFIX, SCORE_LABELS) == []


def test_score_labels_tokenise_like_smollm2(engine):
    paths = engine.encoder.label_trie(ANSWER_PREFIX, SCORE_LABELS).paths
    one, zero = engine.encoder.tokenizer.convert_tokens_to_ids(["1", "0"])
    assert paths[10] == (one, zero) and paths[1] == (one,)


@pytest.mark.parametrize("labels", [SCORE_LABELS, NESTED_LABELS])
def test_distribution_is_the_models_own(engine, reference, labels):
    """The same numbers as the reference, which reads them straight off the logits: no temperature,
    no top-k cut, no renormalisation by a sampler; multi-token labels (nested, and on two chains) too."""
    expected = reference.score_distribution(JUDGED, ANSWER_PREFIX, labels)
    for row, want in zip(engine.score_distribution(JUDGED, ANSWER_PREFIX, labels), expected, strict=True):
        assert row == pytest.approx(want, rel=1e-3, abs=1e-7)


@pytest.mark.parametrize("labels", [SCORE_LABELS, NESTED_LABELS])
def test_batched_distributions_equal_single_ones(engine, labels):
    singles = [engine.score_distribution([conversation], ANSWER_PREFIX, labels)[0] for conversation in JUDGED]
    for row, single in zip(engine.score_distribution(JUDGED, ANSWER_PREFIX, labels), singles, strict=True):
        assert row == pytest.approx(single, rel=1e-4, abs=1e-9)


def test_bad_calls_are_refused(engine):
    with pytest.raises(ValueError):
        engine.generate(["Hi"], n=0, sampling=Sampling())
    with pytest.raises(ValueError):
        engine.generate([""], n=1, sampling=Sampling())


def test_embed_is_the_models_pooled_hidden_states(engine, reference):
    texts = ["Why is the sky blue?", "Name three rivers in Europe, please, and say which is longest.", "Hi"]
    vectors = engine.embed(texts, layer=-1, pooling="mean")
    assert vectors.shape == (3, reference.model.config.hidden_size) and vectors.dtype == np.float32
    assert np.allclose(vectors, reference.embed(texts, layer=-1, pooling="mean"), atol=1e-4)


def test_concurrent_calls_give_the_sync_results(engine):
    """A Serve replica awaits an engine that batches by itself; the answers are the sync ones."""
    if not isinstance(engine, ConcurrentEngine):
        pytest.skip("this engine serves one call at a time (the deployments take turns on it)")
    sampling = Sampling(max_new_tokens=8, seed=3)

    async def together():
        return await asyncio.gather(engine.agenerate(["Once upon a time"], 2, sampling),
                                    engine.agenerate([CHAT], 2, sampling),
                                    engine.ascore_distribution(JUDGED, ANSWER_PREFIX, SCORE_LABELS))

    first, second, dist = asyncio.run(together())
    assert first == engine.generate(["Once upon a time"], 2, sampling)
    assert len(second) == 1 and len(second[0]) == 2
    for row, alone in zip(dist, engine.score_distribution(JUDGED, ANSWER_PREFIX, SCORE_LABELS), strict=True):
        assert row == pytest.approx(alone, rel=1e-6)
