"""engines.factory: what `engine: auto` picks and why, and what an explicit choice does when it cannot run.

No engine is built here: the choice is a pure function of what vLLM reports about itself, which each
test fixes by hand.
"""

import pytest

from alma.engines import factory
from alma.engines.factory import EngineUnavailable, choose_engine


@pytest.fixture
def vllm_says(monkeypatch: pytest.MonkeyPatch):
    def fix(platform: str | None, problem: str | None = None) -> None:
        monkeypatch.setattr(factory, "vllm_platform", lambda: (platform, problem))

    return fix


def test_auto_takes_vllm_where_it_runs_on_the_device(vllm_says):
    vllm_says("cpu")
    choice = choose_engine("auto", "cpu")
    assert (choice.kind, choice.device) == ("vllm", "cpu") and "runs on cpu" in choice.reason
    vllm_says("cuda")
    assert choose_engine("auto", "cuda").kind == "vllm"


def test_auto_falls_back_to_transformers_and_says_why(vllm_says):
    vllm_says(None, "vllm is not installed (pip install ...)")
    choice = choose_engine("auto", "cpu")
    assert (choice.kind, choice.device) == ("transformers", "cpu") and "not installed" in choice.reason
    vllm_says("cpu")  # the CPU build on a machine whose engines should use its GPU
    choice = choose_engine("auto", "cuda")
    assert choice.kind == "transformers" and "runs on cpu" in choice.reason and "for cuda" in choice.reason


def test_explicit_choices_are_taken_or_refused_with_the_reason(vllm_says):
    vllm_says(None, "import vllm failed: OSError: libcudart.so.13")
    assert choose_engine("transformers", "cpu").kind == "transformers"
    with pytest.raises(EngineUnavailable, match="libcudart"):
        choose_engine("vllm", "cpu")
    vllm_says("cpu")
    assert choose_engine("vllm", "cpu").kind == "vllm"
    with pytest.raises(ValueError, match="unknown engine"):
        choose_engine("tensorrt", "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        choose_engine("auto", "tpu")


def test_auto_device_follows_what_torch_sees(vllm_says, monkeypatch: pytest.MonkeyPatch):
    vllm_says("cpu")
    monkeypatch.setattr(factory, "_torch_device", lambda: "cuda")
    assert choose_engine("transformers", "auto").device == "cuda"
    assert choose_engine("auto", "auto").kind == "transformers"
    monkeypatch.setattr(factory, "_torch_device", lambda: "cpu")
    assert choose_engine("auto", "auto") == factory.EngineChoice("vllm", "cpu", "vLLM is installed and runs on cpu")


def test_the_real_answer_is_a_reason_or_a_device():
    platform, problem = factory.vllm_platform()
    assert (platform in ("cpu", "cuda")) != (problem is not None)
