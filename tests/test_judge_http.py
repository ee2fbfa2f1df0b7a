"""The served judge: its HTTP contract in-process with a stand-in judge (fast), then the real Serve app on
loopback with the tiny model and a real HTTP client (slow), and `alma judge serve` / `alma judge score`
end to end through the CLI."""

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from procs import descendants, listeners, on_loopback

from alma.core.errors import ConfigError
from alma.core.judge_api import (
    ApiError,
    BatchStats,
    RankRequest,
    ScoreRequest,
    ServiceSettings,
    best_index,
    check_bearer,
    load_token,
    parse_request,
    token_digest,
)

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY, MAX_RESPONSES = 4096, 4
BIG = b'{"prompt": "' + b"x" * 5000 + b'", "response": "r"}'


def _chunks(data: bytes, size: int = 1000):
    for start in range(0, len(data), size):
        yield data[start : start + size]


# (name, method, path, request kwargs, status, code, field): every bad input the endpoint must refuse.
BAD_REQUESTS = [
    ("missing response", "POST", "/v1/score", {"json": {"prompt": "p"}}, 422, "missing_field", "response"),
    ("missing prompt", "POST", "/v1/rank", {"json": {"responses": ["a"]}}, 422, "missing_field", "prompt"),
    ("number for text", "POST", "/v1/score", {"json": {"prompt": "p", "response": 7}}, 422, "invalid_field",
     "response"),
    ("null for text", "POST", "/v1/score", {"json": {"prompt": None, "response": "r"}}, 422, "invalid_field",
     "prompt"),
    ("text for list", "POST", "/v1/rank", {"json": {"prompt": "p", "responses": "a"}}, 422, "invalid_field",
     "responses"),
    ("number in list", "POST", "/v1/rank", {"json": {"prompt": "p", "responses": ["a", 3]}}, 422,
     "invalid_field", "responses[1]"),
    ("empty string", "POST", "/v1/score", {"json": {"prompt": "", "response": "r"}}, 422, "invalid_field",
     "prompt"),
    ("blank string", "POST", "/v1/score", {"json": {"prompt": "p", "response": " \n\t"}}, 422, "invalid_field",
     "response"),
    ("empty string in list", "POST", "/v1/rank", {"json": {"prompt": "p", "responses": ["a", ""]}}, 422,
     "invalid_field", "responses[1]"),
    ("no responses", "POST", "/v1/rank", {"json": {"prompt": "p", "responses": []}}, 422, "invalid_field",
     "responses"),
    ("too many responses", "POST", "/v1/rank", {"json": {"prompt": "p", "responses": ["a"] * (MAX_RESPONSES + 1)}},
     422, "too_many_responses", "responses"),
    ("unknown field", "POST", "/v1/score", {"json": {"prompt": "p", "response": "r", "temperature": 1}}, 422,
     "unknown_field", "temperature"),
    ("array body", "POST", "/v1/score", {"json": ["p", "r"]}, 422, "invalid_body", None),
    ("invalid JSON", "POST", "/v1/score", {"content": b'{"prompt": "p", '}, 400, "invalid_json", None),
    ("empty body", "POST", "/v1/rank", {"content": b""}, 400, "invalid_json", None),
    ("bad UTF-8", "POST", "/v1/score", {"content": b'{"prompt": "\xff"}'}, 400, "invalid_json", None),
    ("lone surrogate", "POST", "/v1/score", {"content": b'{"prompt": "p", "response": "\\ud800"}'}, 422,
     "invalid_field", "response"),
    ("deep nesting", "POST", "/v1/score", {"content": b"[" * 3000}, 400, "invalid_json", None),
    ("body over the limit", "POST", "/v1/score", {"content": BIG}, 413, "body_too_large", None),
    ("chunked body over the limit", "POST", "/v1/rank", {"chunked": BIG}, 413, "body_too_large", None),
    ("unknown route", "GET", "/v1/nothing", {}, 404, "not_found", None),
    ("unknown version", "POST", "/v2/score", {"json": {"prompt": "p", "response": "r"}}, 404, "not_found", None),
    ("wrong method", "GET", "/v1/score", {}, 405, "method_not_allowed", None),
    ("wrong method on rank", "PUT", "/v1/rank", {"json": {}}, 405, "method_not_allowed", None),
]


def send(client, method, path, kwargs, headers=AUTH):
    kwargs = dict(kwargs)
    if "chunked" in kwargs:  # a generator body goes out chunked, with no Content-Length
        kwargs["content"] = _chunks(kwargs.pop("chunked"))
    return client.request(method, path, headers=headers, **kwargs)


def assert_refused(res, status, code, field):
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith("application/json")
    error = res.json()["error"]
    assert error["code"] == code and error["message"]
    assert error.get("field") == field


# ---- pure logic ---------------------------------------------------------------------------------------


def test_valid_requests_parse():
    req = parse_request(ScoreRequest, b'{"prompt": "Hi?", "response": "Hello."}', MAX_RESPONSES)
    assert (req.prompt, req.response) == ("Hi?", "Hello.")
    req = parse_request(RankRequest, json.dumps({"prompt": "p", "responses": ["a", "b"]}).encode(), 2)
    assert req.responses == ["a", "b"]


@pytest.mark.parametrize("body, status, code, field", [
    (b'{"prompt": "p"}', 422, "missing_field", "response"),
    (b'{"prompt": "p", "response": ["r"]}', 422, "invalid_field", "response"),
    (b'{"prompt": "p", "response": ""}', 422, "invalid_field", "response"),
    (b'{"prompt": "p", "response": "r", "x": 1}', 422, "unknown_field", "x"),
    (b'"text"', 422, "invalid_body", None),
    (b"{", 400, "invalid_json", None),
    (b"  ", 400, "invalid_json", None),
])
def test_bad_bodies_are_typed_errors(body, status, code, field):
    with pytest.raises(ApiError) as e:
        parse_request(ScoreRequest, body, MAX_RESPONSES)
    assert (e.value.status, e.value.code, e.value.field) == (status, code, field)


def test_bearer_check_and_token_loading(tmp_path):
    check_bearer(None, None)  # no token configured: open
    digest = token_digest(TOKEN)
    check_bearer(f"Bearer {TOKEN}", digest)
    check_bearer(f"bearer {TOKEN}", digest)
    for header in (None, "", TOKEN, f"Basic {TOKEN}", "Bearer ", f"Bearer {TOKEN}x"):
        with pytest.raises(ApiError) as e:
            check_bearer(header, digest)
        assert e.value.status == 401 and TOKEN not in e.value.message
    assert load_token(None, {}) is None
    assert load_token(None, {"ALMA_JUDGE_TOKEN": f" {TOKEN}\n"}) == TOKEN
    path = tmp_path / "token"
    path.write_text("file-token-0123456789\n")
    assert load_token(str(path), {"ALMA_JUDGE_TOKEN": TOKEN}) == "file-token-0123456789", "the file wins"
    path.write_text("short")
    with pytest.raises(ConfigError, match="at least 16"):
        load_token(str(path), {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_token(str(tmp_path / "missing"), {})


def test_replies_carry_the_judges_mode_and_never_nan():
    from alma.core.judge_api import rank_reply, score_reply

    settings = ServiceSettings("m", "expected", None, MAX_BODY, MAX_RESPONSES)
    flat = [1 / 11] * 11
    assert score_reply({"score": 5.0, "distribution": flat}, settings) == {
        "score": 5.0, "distribution": flat, "mode": "expected", "model": "m"}
    sampled = [{"score": math.nan, "distribution": [0.0] * 11, "mode": "sampled", "missing": 5},
               {"score": 3.0, "distribution": flat, "mode": "sampled", "missing": 1}]
    assert score_reply(sampled[0], settings)["score"] is None, "NaN is not JSON"
    assert rank_reply(sampled, settings) == {"scores": [None, 3.0], "best_index": 1, "mode": "sampled",
                                             "model": "m", "missing": [5, 1]}


def test_best_index_and_batch_stats():
    assert best_index([1.0, 3.0, 3.0, 2.0]) == 1, "a tie goes to the first"
    assert best_index([None, 2.0]) == 1 and best_index([None]) is None
    stats = BatchStats()
    for requests, judgments in ((1, 1), (3, 5), (3, 3)):
        stats.record(requests, judgments)
    summary = stats.summary()
    assert summary["batches"] == 3 and summary["requests"] == 7 and summary["judgments"] == 9
    assert summary["largest_batch_requests"] == 3 and summary["requests_per_batch"] == {"1": 1, "3": 2}


def test_serve_settings_are_checked():
    from alma.config import load_config

    with pytest.raises(ConfigError, match="10002-19999"):
        load_config("tiny", overrides=["judge_serve.port=12000"])
    with pytest.raises(ConfigError, match="max_batch_size"):
        load_config("tiny", overrides=["judge_serve.max_responses=64", "judge_serve.max_batch_size=8"])


# ---- the HTTP contract in-process (no Ray): a stand-in judge behind the real app ----------------------


async def _stand_in_judge(pairs):
    results = []
    for pair in pairs:
        score = len(pair["response"]) % 11
        results.append({"score": float(score), "distribution": [float(i == score) for i in range(11)]})
    return results


async def _broken_judge(pairs):
    raise RuntimeError("replica died")


def _app_client(token=TOKEN, judge=_stand_in_judge):
    from starlette.testclient import TestClient

    from alma.actors.judge_http import build_app

    settings = ServiceSettings("stand-in", "expected", token_digest(token) if token else None, MAX_BODY,
                               MAX_RESPONSES)
    return TestClient(build_app(judge, settings, BatchStats()), raise_server_exceptions=False)


@pytest.mark.parametrize("name, method, path, kwargs, status, code, field", BAD_REQUESTS,
                         ids=[row[0] for row in BAD_REQUESTS])
def test_app_refuses_bad_input(name, method, path, kwargs, status, code, field):
    with _app_client() as client:
        assert_refused(send(client, method, path, kwargs), status, code, field)


def test_app_answers_and_authenticates():
    with _app_client() as client:
        res = client.post("/v1/rank", json={"prompt": "p", "responses": ["a", "abc", "ab"]}, headers=AUTH)
        assert res.status_code == 200
        assert res.json() == {"scores": [1.0, 3.0, 2.0], "best_index": 1, "mode": "expected", "model": "stand-in"}
        assert client.get("/healthz").status_code == 200, "/healthz needs no token"
        assert client.get("/openapi.json").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            res = client.post("/v1/score", json={"prompt": "p", "response": "r"}, headers=headers)
            assert_refused(res, 401, "unauthorized", None)
            assert res.headers["www-authenticate"] == "Bearer"
        # auth is checked before the body is read
        assert_refused(client.post("/v1/score", content=BIG), 401, "unauthorized", None)
    with _app_client(token=None) as client:
        assert client.post("/v1/score", json={"prompt": "p", "response": "r"}).status_code == 200
    with _app_client(judge=_broken_judge) as client:
        res = client.post("/v1/score", json={"prompt": "p", "response": "r"}, headers=AUTH)
        assert_refused(res, 503, "judge_unavailable", None)


# ---- the client CLI -----------------------------------------------------------------------------------


def alma(args, env=None, timeout=120):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "alma.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def free_port() -> int:
    """An unused loopback port from the ephemeral range, which lies outside Ray's worker ports."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_client_reports_connection_errors_in_one_line():
    res = alma(["judge", "score", "--url", f"http://127.0.0.1:{free_port()}", "--prompt", "p", "--response", "r"])
    assert res.returncode == 2 and "cannot connect" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    res = alma(["judge", "serve", "--checkpoint", "builtin:tiny", "--port", "12000"])
    assert res.returncode == 2 and "10002-19999" in res.stderr and len(res.stderr.strip().splitlines()) == 1


# ---- the real Serve app on loopback (tiny model) ------------------------------------------------------

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory, tiny_model, alma_cache):
    """`alma judge serve` in a subprocess (token from the environment), started early so that it boots
    while the in-process service below does."""
    # A short folder, so that Ray keeps its files (logs included) inside it, where the test can read them.
    root = Path(tempfile.mkdtemp(prefix="alma-js-"))
    port, log = free_port(), root / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ALMA_CACHE": str(alma_cache), "ALMA_JUDGE_TOKEN": TOKEN}
    env.pop("RAY_ADDRESS", None)
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "alma.cli", "judge", "serve", "--preset", "tiny", "--checkpoint",
             str(tiny_model), "--port", str(port), "--out", str(root / "run")],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    yield server, port, log
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=90)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def service(tmp_path_factory, tiny_model, cli_server):
    """One local Ray and Serve for the module: the judge HTTP app with a token at /, one without at /open."""
    from alma.cluster.serve_judge import deploy_judge_http, start_judge_http
    from alma.cluster.local import start_ray, stop_ray
    from alma.config import load_config

    run = tmp_path_factory.mktemp("judge-service")
    port = free_port()
    cfg = load_config("tiny", overrides=[
        f"out_dir={run}", f"judge_serve.port={port}", f"judge_serve.max_body_bytes={MAX_BODY}",
        f"judge_serve.max_responses={MAX_RESPONSES}", "judge_serve.max_batch_size=16",
        "judge_serve.batch_wait_timeout_s=0.05", "judge_serve.model_name=tiny-judge"])
    ctx = start_ray(run)
    try:
        start_judge_http(cfg, tiny_model, "tiny-judge", TOKEN)
        deploy_judge_http(cfg, tiny_model, "tiny-judge", None, name="alma-judge-http-open", route_prefix="/open")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False) as client:
            yield {"client": client, "port": port, "url": f"http://127.0.0.1:{port}"}
    finally:
        stop_ray(ctx)


@slow
def test_score_and_rank(service):
    from alma.core.scoring import expected_score

    client = service["client"]
    res = client.post("/v1/score", json={"prompt": "What is 2+2?", "response": "4."}, headers=AUTH)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["mode"] == "expected" and body["model"] == "tiny-judge"
    assert len(body["distribution"]) == 11 and abs(sum(body["distribution"]) - 1) < 1e-5
    assert math.isfinite(body["score"]) and body["score"] == pytest.approx(expected_score(body["distribution"]))
    responses = ["4.", "Five.", "It is four, since 2+2=4.", "I like turtles."]
    res = client.post("/v1/rank", json={"prompt": "What is 2+2?", "responses": responses}, headers=AUTH)
    assert res.status_code == 200, res.text
    ranked = res.json()
    scores = ranked["scores"]
    assert len(scores) == 4 and ranked["best_index"] == scores.index(max(scores))
    assert scores[0] == pytest.approx(body["score"], abs=1e-4), "a score does not depend on its batch"


@slow
@pytest.mark.parametrize("name, method, path, kwargs, status, code, field", BAD_REQUESTS,
                         ids=[row[0] for row in BAD_REQUESTS])
def test_bad_input_is_a_4xx_json_error(service, name, method, path, kwargs, status, code, field):
    assert_refused(send(service["client"], method, path, kwargs), status, code, field)


@slow
def test_auth_on_and_off(service):
    client = service["client"]
    pair = {"prompt": "Say hi.", "response": "Hi!"}
    assert_refused(client.post("/v1/score", json=pair), 401, "unauthorized", None)
    wrong = {"Authorization": "Bearer not-the-token-0123456789"}
    assert_refused(client.post("/v1/score", json=pair, headers=wrong), 401, "unauthorized", None)
    assert_refused(client.get("/v1/models"), 401, "unauthorized", None)
    assert client.get("/healthz").json() == {"status": "ok"}
    models = client.get("/v1/models", headers=AUTH).json()["data"]
    assert models[0]["id"] == "tiny-judge" and models[0]["max_responses"] == MAX_RESPONSES
    assert client.post("/open/v1/score", json=pair).status_code == 200, "no token configured: no auth"


@slow
def test_concurrent_requests_are_batched(service):
    client = service["client"]
    pairs = [{"prompt": f"Question {i}?", "response": f"Answer number {i}."} for i in range(24)]
    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(lambda pair: client.post("/v1/score", json=pair, headers=AUTH), pairs))
    assert [a.status_code for a in answers] == [200] * 24
    stats = client.get("/v1/stats", headers=AUTH).json()
    assert stats["largest_batch_requests"] > 1, stats
    assert stats["batches"] < stats["requests"]


@slow
def test_openapi_schema(service):
    schema = service["client"].get("/openapi.json").json()
    assert {"/v1/score", "/v1/rank", "/v1/models", "/healthz"} <= set(schema["paths"])
    body = schema["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["prompt", "response"]


@slow
@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_every_listener_ison_loopback(service):
    addresses = listeners(descendants(os.getpid()))
    assert f"127.0.0.1:{service['port']}" in addresses
    assert all(on_loopback(a) for a in addresses), addresses


@slow
def test_cli_serves_scores_and_stops(cli_server):
    """`alma judge serve` in the foreground, `alma judge score` against it, Ctrl-C, and nothing left over."""
    server, port, log = cli_server
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 150
    while time.time() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/v1/models", headers=AUTH, timeout=2, trust_env=False).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    assert server.poll() is None, log.read_text()[-3000:]
    if shutil.which("ss"):
        addresses = listeners(descendants(server.pid))
        assert f"127.0.0.1:{port}" in addresses and all(on_loopback(a) for a in addresses), addresses
    res = alma(["judge", "score", "--url", url, "--prompt", "Say hi.", "--response", "Hi!"],
               {"ALMA_JUDGE_TOKEN": TOKEN})
    assert res.returncode == 0, res.stderr
    answer = json.loads(res.stdout)
    assert len(answer["distribution"]) == 11 and 0 <= answer["score"] <= 10
    res = alma(["judge", "score", "--url", url, "--prompt", "p", "--response", "a", "--response", "b"],
               {"ALMA_JUDGE_TOKEN": TOKEN})
    assert res.returncode == 0 and len(json.loads(res.stdout)["scores"]) == 2, res.stderr
    res = alma(["judge", "score", "--url", url, "--prompt", "p", "--response", "r"], {"ALMA_JUDGE_TOKEN": ""})
    assert res.returncode == 2 and "HTTP 401" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    server.send_signal(signal.SIGINT)
    assert server.wait(timeout=90) == 0, log.read_text()[-3000:]
    assert "stopping the judge service" in log.read_text()
    ray_files = [p for p in (log.parent / "run").rglob("*") if p.is_file()]
    assert any(p.name.endswith(".log") for p in ray_files), "Ray's logs are inside the run folder"
    leaked = [str(p) for p in [log, *ray_files] if TOKEN.encode() in p.read_bytes()]
    assert not leaked, "the token is never printed or logged"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "nothing listens on the port any more"
