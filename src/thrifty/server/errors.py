"""OpenAI-style error bodies, and the mapping of every failure to the right HTTP status.

A client's mistake is always a 4xx with ``{"error": {"message", "type", "param", "code"}}``;
an upstream that still fails after retries and fallbacks is a 502 (bad answer), 503 (nothing
available: cooled down, rate limited, not loadable) or 504 (timed out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from thrifty.errors import (
    ConfigError,
    ProviderError,
    ProviderUnavailableError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)

#: The OpenAI ``error.type`` for each status we send (declared once).
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}
#: Upstream statuses that are the client's fault and pass through unchanged.
PASS_THROUGH_STATUSES = frozenset({400, 404, 413, 422})


class APIError(Exception):
    """An error answered to the client as an OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or ERROR_TYPES.get(status, "server_error")
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        return Response(
            orjson.dumps(self.body()),
            status_code=self.status,
            headers={**self.headers, **(headers or {})},
            media_type="application/json",
        )


def upstream_api_error(exc: BaseException, model: str) -> APIError:
    """The client-facing error for a provider failure that survived retries and fallbacks."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, UpstreamTimeoutError):
        return APIError(504, f"model {model!r}: the upstream timed out: {exc}", code="timeout")
    if isinstance(exc, UpstreamConnectionError):
        return APIError(502, f"model {model!r}: the upstream is unreachable: {exc}",
                        code="upstream_unreachable")
    if isinstance(exc, UpstreamError):
        status = exc.status or 502
        if status in PASS_THROUGH_STATUSES:
            upstream = exc.body.get("error") if isinstance(exc.body, dict) else None
            if isinstance(upstream, dict):
                return APIError(
                    status,
                    str(upstream.get("message") or exc.message),
                    type=upstream.get("type") or None,
                    param=upstream.get("param"),
                    code=upstream.get("code"),
                )
            return APIError(status, exc.message)
        if status == 429:
            retry = {k: v for k, v in exc.headers.items() if k in ("retry-after", "retry-after-ms")}
            return APIError(503, f"model {model!r}: the upstream is rate limited: {exc}",
                            code="upstream_rate_limited", headers=retry)
        return APIError(502, f"model {model!r}: the upstream failed: {exc}", code="upstream_error")
    if isinstance(exc, ProviderUnavailableError):
        return APIError(503, f"model {model!r} is unavailable: {exc}", code="model_unavailable")
    if isinstance(exc, ConfigError):  # a provider rejecting the request's parameters
        return APIError(400, str(exc))
    if isinstance(exc, ProviderError):
        return APIError(502, f"model {model!r}: {exc}", code="upstream_error")
    return APIError(500, "internal error in the gateway", code="internal_error")


async def api_error_handler(request: Request, exc: APIError) -> Response:
    return exc.response()


async def http_error_handler(request: Request, exc: HTTPException) -> Response:
    """Starlette's own 404/405 and friends, in OpenAI's shape."""
    message = exc.detail if exc.status_code != 404 else f"no route {request.url.path}"
    return APIError(exc.status_code, str(message), code="not_found" if exc.status_code == 404
                    else None, headers=exc.headers).response()


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    return APIError(500, "internal error in the gateway", code="internal_error").response()
