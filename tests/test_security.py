"""Security defaults: no checkpoint's own code runs unless the user allows it, weights load from safetensors
only, and the judge token never reaches a log, an answer or an error message. (Listeners on 127.0.0.1:
test_cluster.py, test_judge_http.py.)"""

import ast
import json
import logging
from pathlib import Path

import pytest

from alma.engines.factory import EngineSettings
from alma.config import load_config
from alma.core.errors import ConfigError
from alma.core.judge_api import BatchStats, ServiceSettings, load_token, token_digest
from alma.checkpoints import ModelError, resolve_model

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("alma", "core", "engines", "actors", "jobs", "cluster", "commands")
                 for p in (ROOT / folder).rglob("*.py"))
TOKEN = "s3cret-judge-token-0123456789"


def _from_pretrained_calls():
    """Every `Auto*.from_pretrained(...)` in alma: the loaders that can import code from a checkpoint
    (GenerationConfig and the like read JSON only)."""
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "from_pretrained"
                    and getattr(node.func.value, "id", "").startswith("Auto")):
                yield path.relative_to(ROOT), node


def test_every_from_pretrained_says_whether_remote_code_may_run():
    calls = list(_from_pretrained_calls())
    assert len(calls) >= 5
    for where, call in calls:
        keywords = {k.arg: k.value for k in call.keywords}
        assert "trust_remote_code" in keywords, f"{where}:{call.lineno} leaves trust_remote_code to the library"
        value = keywords["trust_remote_code"]
        assert not (isinstance(value, ast.Constant) and value.value is True), f"{where}:{call.lineno}"


def test_every_model_load_reads_safetensors():
    for where, call in _from_pretrained_calls():
        if getattr(call.func.value, "id", "") != "AutoModelForCausalLM":
            continue
        keywords = {k.arg: k.value for k in call.keywords}
        # The one exception converts the packaged SmolLM2 GGUF file (a format with no code in it).
        if "gguf_file" not in keywords:
            assert isinstance(keywords.get("use_safetensors"), ast.Constant) and keywords["use_safetensors"].value, \
                f"{where}:{call.lineno} may fall back to pickled weights"


def test_remote_code_is_off_unless_set_and_reaches_the_engines():
    cfg = load_config("tiny")
    assert cfg.model.trust_remote_code is False and EngineSettings.of(cfg.model).trust_remote_code is False
    allowed = load_config("tiny", overrides=["model.trust_remote_code=true"])
    assert EngineSettings.of(allowed.model).trust_remote_code is True
    assert allowed.fingerprint() == cfg.fingerprint(), "a permission, not a result: a run may resume with it"


def _model(folder: Path, weights: str, **config) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", **config}))
    (folder / weights).write_bytes(b"\0")
    return folder


def test_model_folders_are_checked_before_anything_loads(tmp_path):
    pickled = _model(tmp_path / "bin", "pytorch_model.bin")
    with pytest.raises(ModelError, match="safetensors only"):
        resolve_model(str(pickled))
    custom = _model(tmp_path / "custom", "model.safetensors", auto_map={"AutoModelForCausalLM": "modeling.M"})
    with pytest.raises(ModelError, match="model.trust_remote_code=true"):
        resolve_model(str(custom))
    assert resolve_model(str(custom), trust_remote_code=True) == custom
    plain = _model(tmp_path / "plain", "model.safetensors")
    assert resolve_model(str(plain)) == plain


def test_judge_token_is_never_logged_or_echoed(tmp_path, caplog, monkeypatch):
    from starlette.testclient import TestClient

    from alma.actors.judge_http import build_app

    async def judge(pairs):
        if pairs[0]["prompt"] == "fail":
            raise RuntimeError("replica died")
        return [{"score": 5.0, "distribution": [1 / 11] * 11} for _ in pairs]

    settings = ServiceSettings("m", "expected", token_digest(TOKEN), 4096, 4)
    assert TOKEN not in repr(settings), "replicas get the digest only"
    caplog.set_level(logging.DEBUG)
    seen = []
    with TestClient(build_app(judge, settings, BatchStats()), raise_server_exceptions=False) as client:
        for token, prompt in ((TOKEN, "p"), (TOKEN + "x", "p"), (TOKEN, "fail"), (TOKEN[:-1], "p")):
            res = client.post("/v1/score", json={"prompt": prompt, "response": "r"},
                              headers={"Authorization": f"Bearer {token}"})
            seen.append(res.status_code)
            assert TOKEN[:12] not in res.text
    assert seen == [200, 401, 503, 401]
    assert TOKEN[:12] not in caplog.text
    # A token refused for its form is not repeated in the one-line error.
    bad = tmp_path / "token"
    bad.write_text("zebra crossing")
    with pytest.raises(ConfigError) as refused:
        load_token(str(bad))
    assert "zebra" not in str(refused.value) and str(bad) in str(refused.value)
    monkeypatch.setenv("ALMA_JUDGE_TOKEN", "tiny")
    with pytest.raises(ConfigError) as refused:
        load_token(None)
    assert "tiny" not in str(refused.value)
