"""A small client of the served judge (`alma judge score`); any HTTP client works as well (see docs/judge-api.md).

Standard library only. Failures the user can act on (unreachable server, refused request) are
`JudgeClientError`s, which the CLI prints as one line with exit code 2.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from alma.core.errors import AlmaError


class JudgeClientError(AlmaError):
    """The judge endpoint could not be reached or refused the request."""


def _opener(url: str) -> urllib.request.OpenerDirector:
    host = urllib.parse.urlsplit(url).hostname or ""
    # A proxy from the environment must not see (or break) traffic meant for this machine.
    if host == "localhost" or host.startswith("127.") or host == "::1":
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def call(url: str, route: str, body: dict[str, Any] | None = None, token: str | None = None,
         timeout: float = 60.0) -> dict[str, Any]:
    """POST `body` (or GET when None) to `url` + `route`; returns the decoded JSON answer."""
    target = url.rstrip("/") + route
    if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
        raise JudgeClientError(f"{url}: the URL must start with http:// or https://")
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(target, data=data, headers=headers, method="GET" if body is None else "POST")
    try:
        with _opener(target).open(request, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as e:
        try:
            error = json.loads(e.read())["error"]
            detail = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            detail = e.reason
        raise JudgeClientError(f"{target}: HTTP {e.code}: {detail}") from None
    except urllib.error.URLError as e:
        raise JudgeClientError(f"{target}: cannot connect ({e.reason})") from None
    except (OSError, ValueError) as e:  # timeouts, resets, a non-JSON answer
        raise JudgeClientError(f"{target}: {e.__class__.__name__}: {e}") from None
