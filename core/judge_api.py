"""The served judge's HTTP contract as plain logic: request shapes, validation, errors, auth, batch stats.

Everything the endpoint decides about a request before the judge sees it lives here, so that it is
unit-tested without Ray or a web server: the body must be JSON within a size limit, fields have fixed
types and may not be empty, a ranking holds at most a configured number of responses, and a configured
bearer token must match. Each refusal is an `ApiError` with an HTTP status and one stable JSON shape:

    {"error": {"code": "missing_field", "message": "field 'response' is required", "field": "response"}}

The token itself is never kept by the service: only its SHA-256 digest travels to the replicas, and a
presented token is compared digest to digest in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from alma.core.errors import ConfigError

API_VERSION = "v1"
TOKEN_ENV = "ALMA_JUDGE_TOKEN"
# A bearer token is the only thing between the network and the judge: short ones can be guessed.
MIN_TOKEN_CHARS = 16


class ApiError(Exception):
    """A request the endpoint refuses: HTTP status, stable machine code, human message, offending field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


# ---- request and response shapes (also the OpenAPI schema) ------------------------------------------


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("blank")
    try:  # JSON can carry lone surrogates ("\\ud800"), which no tokenizer accepts
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not_unicode") from None
    return value


Text = Annotated[str, StringConstraints(min_length=1), AfterValidator(_text)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ScoreRequest(_Request):
    """One (prompt, response) pair to judge."""

    prompt: Text = Field(description="The user's request the response answers.")
    response: Text = Field(description="The assistant response to judge.")


class RankRequest(_Request):
    """Several responses to one prompt, to judge and order."""

    prompt: Text = Field(description="The user's request the responses answer.")
    responses: list[Text] = Field(min_length=1, description="Candidate responses (at most the configured limit).")


class ScoreResponse(BaseModel):
    score: float | None = Field(description="The judge's 0..10 score; null only when a sampled judge wrote no "
                                "readable score in any of its k replies.")
    distribution: list[float] = Field(description="Probabilities of the labels 0..10 (sum to 1).")
    mode: str = Field(description="How the score was read from the judge: expected, argmax or sampled.")
    model: str = Field(description="The judge checkpoint that scored.")
    missing: int | None = Field(None, description="Sampled mode only: sampled judgments with no readable score.")


class RankResponse(BaseModel):
    scores: list[float | None] = Field(description="One score per response, in request order.")
    best_index: int | None = Field(description="Index of the highest score (the first on a tie).")
    mode: str = Field(description="How the scores were read from the judge.")
    model: str = Field(description="The judge checkpoint that scored.")
    missing: list[int] | None = Field(None, description="Sampled mode only: unreadable judgments per response.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable reason, e.g. missing_field, body_too_large.")
    message: str = Field(description="What is wrong, for people.")
    field: str | None = Field(None, description="The request field at fault, e.g. responses[2].")


class ErrorResponse(BaseModel):
    error: ErrorDetail


@dataclass(frozen=True)
class ServiceSettings:
    """What an ingress replica needs to answer requests (no secret: only the token's digest)."""

    model: str
    mode: str  # the configured scoring mode; a judge result that names its own mode wins
    token_digest: str | None
    max_body_bytes: int
    max_responses: int


def _score(result: dict[str, Any]) -> float | None:
    """A judge's score as JSON allows it: a sampled judgment with no readable reply is NaN, sent as null."""
    score = result["score"]
    return None if score is None or not math.isfinite(score) else float(score)


def score_reply(result: dict[str, Any], settings: ServiceSettings) -> dict[str, Any]:
    """The /v1/score answer from one judge result ({score, distribution[, mode, missing]})."""
    reply = {"score": _score(result), "distribution": list(result["distribution"]),
             "mode": result.get("mode", settings.mode), "model": settings.model}
    if reply["mode"] == "sampled":
        reply["missing"] = result.get("missing", 0)
    return reply


def rank_reply(results: list[dict[str, Any]], settings: ServiceSettings) -> dict[str, Any]:
    """The /v1/rank answer: scores in request order and the index of the best one."""
    scores = [_score(result) for result in results]
    reply = {"scores": scores, "best_index": best_index(scores),
             "mode": results[0].get("mode", settings.mode), "model": settings.model}
    if reply["mode"] == "sampled":
        reply["missing"] = [result.get("missing", 0) for result in results]
    return reply


# ---- validation ---------------------------------------------------------------------------------------


def check_content_length(header: str | None, limit: int) -> None:
    """Refuse a declared body over `limit` before reading it (the read itself is capped too)."""
    if header is None:
        return
    try:
        declared = int(header)
    except ValueError:
        raise ApiError(400, "invalid_header", "Content-Length is not an integer") from None
    if declared > limit:
        raise too_large(limit)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the request body is over the {limit}-byte limit")


def _field_name(loc: tuple[Any, ...]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def _explain(error: dict[str, Any]) -> ApiError:
    field = _field_name(error["loc"])
    kind = error["type"]
    if kind == "missing":
        return ApiError(422, "missing_field", f"field '{field}' is required", field)
    if kind == "extra_forbidden":
        return ApiError(422, "unknown_field", f"field '{field}' is not part of this request", field)
    if kind == "list_type":
        return ApiError(422, "invalid_field", f"field '{field}' must be a list of strings", field)
    if kind == "string_type":
        return ApiError(422, "invalid_field", f"field '{field}' must be a string", field)
    if kind == "too_short" and isinstance(error.get("input"), list):
        return ApiError(422, "invalid_field", f"field '{field}' must hold at least one response", field)
    if kind == "string_unicode":  # JSON can carry lone surrogates ("\\ud800"), which no tokenizer takes
        return ApiError(422, "invalid_field", f"field '{field}' is not valid Unicode text", field)
    # string_too_short, or the blank check
    return ApiError(422, "invalid_field", f"field '{field}' must not be empty or only whitespace", field)


def parse_request(model: type[_Request], body: bytes, max_responses: int) -> _Request:
    """Decode and validate a JSON body as `model`; raises ApiError (400 or 422) on anything wrong."""
    if not body.strip():
        raise ApiError(400, "invalid_json", "the request body is empty; send a JSON object")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:  # bad UTF-8, bad JSON, or nesting deep enough to overflow
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "the request body must be a JSON object")
    try:
        request = model.model_validate(data)
    except ValidationError as e:
        raise _explain(e.errors()[0]) from None
    if isinstance(request, RankRequest) and len(request.responses) > max_responses:
        raise ApiError(422, "too_many_responses",
                       f"{len(request.responses)} responses; at most {max_responses} per request", "responses")
    return request


def best_index(scores: list[float | None]) -> int | None:
    """Index of the highest score, the first one on a tie (as best-of-N does); None if no score is usable."""
    best = None
    for index, score in enumerate(scores):
        if score is not None and (best is None or score > scores[best]):
            best = index
    return best


# ---- bearer-token auth -------------------------------------------------------------------------------


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_token(token_file: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The configured token: the token file if one is given, else $ALMA_JUDGE_TOKEN, else None (no auth)."""
    environ = os.environ if environ is None else environ
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{token_file}: cannot read the token file ({e.__class__.__name__})") from None
        where = token_file
    else:
        token = environ.get(TOKEN_ENV, "").strip()
        where = f"${TOKEN_ENV}"
        if not token:
            return None
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ConfigError(f"{where}: the token must be at least {MIN_TOKEN_CHARS} characters with no spaces "
                          f"(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token


def check_bearer(header: str | None, digest: str | None) -> None:
    """Raise 401 unless auth is off (`digest` None) or `header` is 'Bearer <token>' with the right token."""
    if digest is None:
        return
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(401, "unauthorized", "this endpoint needs an 'Authorization: Bearer <token>' header")
    if not hmac.compare_digest(token_digest(presented.strip()), digest):
        raise ApiError(401, "unauthorized", "the bearer token is not valid")


# ---- batching statistics ------------------------------------------------------------------------------


class BatchStats:
    """How concurrent requests were grouped into judge calls (per ingress replica)."""

    def __init__(self) -> None:
        self.requests_per_batch: Counter[int] = Counter()
        self.judgments = 0

    def record(self, requests: int, judgments: int) -> None:
        self.requests_per_batch[requests] += 1
        self.judgments += judgments

    def summary(self) -> dict[str, Any]:
        batches = sum(self.requests_per_batch.values())
        requests = sum(size * count for size, count in self.requests_per_batch.items())
        return {
            "batches": batches,
            "requests": requests,
            "judgments": self.judgments,
            "largest_batch_requests": max(self.requests_per_batch, default=0),
            "mean_batch_judgments": self.judgments / batches if batches else 0.0,
            "requests_per_batch": {str(size): count for size, count in sorted(self.requests_per_batch.items())},
        }
