"""The served judge: one Serve deployment that is both the HTTP ingress and the judge.

Each replica authenticates, validates (core.judge_api) and batches: concurrent requests are grouped
with `@serve.batch` and scored in one call of the shared scoring code (core.judge_modes, the same the
run's judge deployment uses) on the replica's own engine, one batch at a time. `@serve.batch` closes a
batch `batch_wait_timeout_s` after its first request, whether or not the engine is free; so that batches
fill up under load instead of trickling out small, requests that arrive while a batch is being scored wait
at a gate and are let through together when it ends. The limit counts judgments, not requests (a ranking
of 8 responses is 8). Replicas autoscale like the run's deployments (`serve.*`).

`build_app` is plain FastAPI around any async `judge(pairs) -> results` function, so the HTTP behaviour is
tested without Ray; the deployment only supplies the batched judge call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from starlette.exceptions import HTTPException

from alma.actors.loopback import keep_replica_grpc_on_loopback
from alma.actors.metrics import RequestMetrics
from alma.actors.scorer import PairScorer, Scoring
from alma.core.judge_api import (
    API_VERSION,
    ApiError,
    BatchStats,
    ErrorResponse,
    RankRequest,
    RankResponse,
    ScoreRequest,
    ScoreResponse,
    ServiceSettings,
    check_bearer,
    check_content_length,
    parse_request,
    rank_reply,
    score_reply,
    too_large,
)
from alma.core.scoring import SCORE_LABELS
from alma.engines.factory import EngineSettings

log = logging.getLogger("alma.judge_http")

Pair = dict[str, str]
JudgeCall = Callable[[list[Pair]], Awaitable[list[dict[str, Any]]]]

_ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 413, 422, 503)}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def _body_schema(model: type) -> dict[str, Any]:
    """The request body in the OpenAPI schema; the route reads the body itself (to cap its size first)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def build_app(judge: JudgeCall, settings: ServiceSettings, stats: BatchStats | None = None) -> FastAPI:
    """The versioned JSON API around `judge`, which scores a list of {prompt, response} in order."""
    app = FastAPI(title="alma judge", version=API_VERSION, docs_url=None, redoc_url=None,
                  description="Scores (prompt, response) pairs 0..10 with an ALMA judge. Routes under /v1 need "
                  "'Authorization: Bearer <token>' when the service has a token; /healthz and this schema do not.")

    @app.exception_handler(ApiError)
    async def _refused(request: Request, error: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return JSONResponse(error.body(), status_code=error.status, headers=headers)

    @app.exception_handler(HTTPException)
    async def _no_route(request: Request, error: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "http_error")
        message = {404: f"no route {request.url.path}; the API is described at /openapi.json",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(error.status_code,
                                                                                     str(error.detail))
        body = ApiError(error.status_code, code, message).body()
        return JSONResponse(body, status_code=error.status_code, headers=getattr(error, "headers", None))

    def authorize(request: Request) -> None:
        check_bearer(request.headers.get("authorization"), settings.token_digest)

    async def read_body(request: Request) -> bytes:
        limit = settings.max_body_bytes
        check_content_length(request.headers.get("content-length"), limit)
        body = bytearray()
        async for chunk in request.stream():  # chunked uploads declare no length: count what arrives
            body += chunk
            if len(body) > limit:
                raise too_large(limit)
        return bytes(body)

    async def judged(pairs: list[Pair]) -> list[dict[str, Any]]:
        try:
            return await judge(pairs)
        except Exception as e:  # the judge is down or overloaded; the request itself was fine
            log.error("judge call failed: %s: %s", e.__class__.__name__, e)
            raise ApiError(503, "judge_unavailable", "the judge could not score the request; retry later") from None

    @app.get("/healthz", summary="Liveness (no auth)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(f"/{API_VERSION}/models", summary="The judge served here", responses={401: _ERRORS[401]})
    async def models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {"object": "list", "data": [{
            "id": settings.model, "object": "model", "scoring": settings.mode,
            "labels": [int(label) for label in SCORE_LABELS],
            "max_responses": settings.max_responses, "max_body_bytes": settings.max_body_bytes}]}

    @app.get(f"/{API_VERSION}/stats", summary="How requests were batched (this ingress replica)",
             responses={401: _ERRORS[401]})
    async def batch_stats(request: Request) -> dict[str, Any]:
        authorize(request)
        return (stats or BatchStats()).summary()

    @app.post(f"/{API_VERSION}/score", summary="Score one response", openapi_extra=_body_schema(ScoreRequest),
              response_model=None, responses={200: {"model": ScoreResponse}, **_ERRORS})
    async def score(request: Request) -> dict[str, Any]:
        authorize(request)
        req = parse_request(ScoreRequest, await read_body(request), settings.max_responses)
        [result] = await judged([{"prompt": req.prompt, "response": req.response}])
        return score_reply(result, settings)

    @app.post(f"/{API_VERSION}/rank", summary="Score several responses to one prompt and pick the best",
              openapi_extra=_body_schema(RankRequest), response_model=None,
              responses={200: {"model": RankResponse}, **_ERRORS})
    async def rank(request: Request) -> dict[str, Any]:
        authorize(request)
        req = parse_request(RankRequest, await read_body(request), settings.max_responses)
        results = await judged([{"prompt": req.prompt, "response": text} for text in req.responses])
        return rank_reply(results, settings)

    return app


def _judgments(requests: list[list[Pair]]) -> int:
    return sum(len(pairs) for pairs in requests)


@serve.deployment(ray_actor_options={"num_cpus": 0.5})
@serve.ingress()
class JudgeHttp:
    """An HTTP replica holding one judge engine; `scoring` as in JudgeConfig (mode, samples, temperature)."""

    def __init__(self, checkpoint: str, rubric: str, answer_prefix: str, scoring: Scoring,
                 engine: EngineSettings, settings: ServiceSettings, max_batch_size: int,
                 batch_wait_timeout_s: float):
        keep_replica_grpc_on_loopback()
        self._scorer = PairScorer(checkpoint, rubric, answer_prefix, scoring, engine)
        self._settings = settings
        self._stats = BatchStats()
        self._checkpoint, self._metrics = checkpoint, RequestMetrics("judge_http", ("judgments",))
        self._engine_free = asyncio.Event()
        self._engine_free.set()
        self._batched = serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s,
                                    batch_size_fn=_judgments)(self._judge_batch)

    async def _judge(self, pairs: list[Pair]) -> list[dict[str, Any]]:
        with self._metrics.request(self._checkpoint) as count:  # per request: its wait for a batch included
            await self._engine_free.wait()  # the gate: see the module docstring
            judgments = await self._batched(pairs)
            count(judgments=len(judgments))
            return judgments

    async def _judge_batch(self, requests: list[list[Pair]]) -> list[list[dict[str, Any]]]:
        pairs = [pair for request in requests for pair in request]
        self._engine_free.clear()
        try:
            judgments = await asyncio.to_thread(self._scorer.score, pairs)
        finally:
            self._engine_free.set()
        self._stats.record(len(requests), len(pairs))
        out, start = [], 0
        for request in requests:
            out.append(judgments[start : start + len(request)])
            start += len(request)
        return out

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_app(self._judge, self._settings, self._stats)
