"""OpenAI-style error bodies, and the ONE table that maps every failure to its HTTP answer.

A client's mistake is always a 4xx with ``{"error": {"message", "type", "param", "code"}}``;
an upstream that still fails after retries and fallbacks is a 502 (bad answer), 503 (nothing
available: cooled down, rate limited, not loadable) or 504 (timed out).

The stages raise what went wrong, typed (``thrifty.errors``); nothing in the request path
decides a status. :func:`api_error` is applied once, where the ASGI app turns an exception into
a response (the ``Respond`` boundary and Starlette's exception handlers), the way httpx maps
httpcore's exceptions with one table in ``map_httpcore_exceptions``. The table is walked in
order and the first type that matches wins, so subclasses come before their bases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from thrifty.errors import (
    AllDeploymentsFailedError,
    CoalesceTimeoutError,
    ConfigError,
    LimitExceededError,
    ProviderError,
    ProviderUnavailableError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from thrifty.redact import hide_endpoints, redact_text
from thrifty.retry import status_of

log = logging.getLogger("thrifty.server")

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
    431: "invalid_request_error",
    499: "client_closed_request",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}
#: Upstream statuses that are the client's fault and pass through unchanged.
PASS_THROUGH_STATUSES = frozenset({400, 404, 413, 422})
#: Upstream statuses that mean "overloaded, try later": nothing is available (503).
OVERLOADED_STATUSES = frozenset({429, 503})


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


# ---------------------------------------------------------------------- the table's rows
def _as_is(exc: Any, model: str) -> APIError:
    return exc


def _limited(exc: LimitExceededError, model: str) -> APIError:
    budget = exc.limit == "budget"
    return APIError(
        429,
        str(exc),
        type="insufficient_quota" if budget else "rate_limit_error",
        code="budget_exceeded" if budget else "rate_limit_exceeded",
        headers=exc.headers,
    )


def _all_failed(exc: AllDeploymentsFailedError, model: str) -> APIError:
    """Retries and fallbacks used up: the last error decides 502/503/504 (by this same table);
    no deployment available at all is a 503."""
    cause = exc.last_error
    status = 503
    if cause is not None:
        status = api_error(cause, model).status
        status = status if status in (503, 504) else 502
    headers = {}
    if exc.retry_after:
        headers["retry-after"] = str(max(int(exc.retry_after + 0.999), 1))
    reason = f": {cause}" if cause is not None else ": no deployment is available"
    return APIError(
        status,
        f"model {model!r} failed after {len(exc.attempts)} attempt(s) on "
        f"{' -> '.join(exc.tried)}{reason}",
        code="upstream_failed",
        headers=headers,
    )


def _timed_out(exc: BaseException, model: str) -> APIError:
    return APIError(504, f"model {model!r}: the upstream timed out: {exc}", code="timeout")


def _unreachable(exc: UpstreamConnectionError, model: str) -> APIError:
    return APIError(
        502, f"model {model!r}: the upstream is unreachable: {exc}", code="upstream_unreachable"
    )


def _upstream(exc: UpstreamError, model: str) -> APIError:
    """An upstream's error status: the client's own mistakes (4xx) pass through unchanged."""
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
    if status in OVERLOADED_STATUSES:
        retry = {k: v for k, v in exc.headers.items() if k in ("retry-after", "retry-after-ms")}
        return APIError(
            503,
            f"model {model!r}: the upstream is {'rate limited' if status == 429 else 'overloaded'}"
            f": {exc}",
            code="upstream_rate_limited" if status == 429 else "upstream_unavailable",
            headers=retry,
        )
    return APIError(502, f"model {model!r}: the upstream failed: {exc}", code="upstream_error")


def _unavailable(exc: ProviderUnavailableError, model: str) -> APIError:
    return APIError(503, f"model {model!r} is unavailable: {exc}", code="model_unavailable")


def _coalesce_timeout(exc: CoalesceTimeoutError, model: str) -> APIError:
    return APIError(
        504,
        f"model {model!r}: an identical request in flight took too long: {exc}",
        code="timeout",
    )


def _client_closed(exc: ClientDisconnect, model: str) -> APIError:
    """The client went away before the answer (mid-upload, mid-request): nginx's 499. Nobody
    reads the body; the status keeps it out of the 5xx counts and the error log."""
    return APIError(499, "the client closed the request", code="client_closed")


def _bad_parameters(exc: ConfigError, model: str) -> APIError:
    return APIError(400, str(exc))  # a provider rejecting the request's parameters


def _provider(exc: ProviderError, model: str) -> APIError:
    """Any other provider failure; one that carries an overloaded status is a 503."""
    status = 503 if status_of(exc) in OVERLOADED_STATUSES else 502
    return APIError(status, f"model {model!r}: {exc}", code="upstream_error")


#: Exception type -> its client-facing error; the first matching row wins (declared once).
ERROR_TABLE: tuple[tuple[type[BaseException], Callable[[Any, str], APIError]], ...] = (
    (APIError, _as_is),
    (ClientDisconnect, _client_closed),
    (LimitExceededError, _limited),
    (AllDeploymentsFailedError, _all_failed),
    (UpstreamTimeoutError, _timed_out),
    (TimeoutError, _timed_out),
    (UpstreamConnectionError, _unreachable),
    (UpstreamError, _upstream),
    (ProviderUnavailableError, _unavailable),
    (CoalesceTimeoutError, _coalesce_timeout),
    (ConfigError, _bad_parameters),
    (ProviderError, _provider),
)


def api_error(exc: BaseException, model: str | None = None) -> APIError:
    """The client-facing error for ``exc`` (a 500 for anything the table does not know).

    Args:
        model: the requested model, named in upstream errors.
    """
    for error_type, build in ERROR_TABLE:
        if isinstance(exc, error_type):
            error = build(exc, model or "?")
            if build is not _as_is:  # built from a driver's or upstream's text: no secrets
                error.message = hide_endpoints(redact_text(error.message))
            return error
    return APIError(500, "internal error in the gateway", code="internal_error")


def error_response(exc: BaseException, model: str | None = None, where: str = "") -> Response:
    """The response for ``exc``; an unexpected one is logged with its traceback."""
    error = api_error(exc, model)
    if error.status == 500:
        log.error("unexpected error in %s", where or "the gateway", exc_info=exc)
    return error.response()


# --------------------------------------------------------- Starlette's exception handlers
async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 and friends, in OpenAI's shape (registered for
    :class:`~starlette.exceptions.HTTPException` only, hence the cast)."""
    exc = cast(HTTPException, exc)
    message = exc.detail if exc.status_code != 404 else f"no route {request.url.path}"
    return APIError(
        exc.status_code,
        str(message),
        code="not_found" if exc.status_code == 404 else None,
        headers=exc.headers,
    ).response()


async def exception_handler(request: Request, exc: Exception) -> Response:
    """Anything that escaped a route (the batch API's handlers), through the same table."""
    return error_response(exc, where=request.url.path)
