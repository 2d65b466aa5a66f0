"""The one error table (server/errors.py): every failure type -> its HTTP status and body."""

from __future__ import annotations

import pytest

from thrifty.errors import (
    AllDeploymentsFailedError,
    BudgetExceededError,
    CoalesceTimeoutError,
    ConfigError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitExceededError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from thrifty.server.errors import APIError, api_error


def failed(last: BaseException | None, retry_after: float | None = None) -> BaseException:
    return AllDeploymentsFailedError("m", ["m"], [object()], last, 0, retry_after)


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (UpstreamTimeoutError("slow"), 504, "timeout"),
        (TimeoutError(), 504, "timeout"),
        (UpstreamConnectionError("down"), 502, "upstream_unreachable"),
        (UpstreamError("boom", status=500), 502, "upstream_error"),
        (UpstreamError("busy", status=429), 503, "upstream_rate_limited"),
        (ProviderUnavailableError("not loadable"), 503, "model_unavailable"),
        (CoalesceTimeoutError("waited"), 504, "timeout"),
        (ConfigError("bad parameter"), 400, None),
        (ProviderError("odd"), 502, "upstream_error"),
        (failed(UpstreamTimeoutError("slow")), 504, "upstream_failed"),
        (failed(UpstreamError("busy", status=503)), 503, "upstream_failed"),
        (failed(UpstreamError("boom", status=500)), 502, "upstream_failed"),
        (failed(ConfigError("a 400 is not an upstream status")), 502, "upstream_failed"),
        (failed(None), 503, "upstream_failed"),
        (RuntimeError("a bug"), 500, "internal_error"),
    ],
)
def test_each_failure_has_one_status(exc: BaseException, status: int, code: str | None) -> None:
    error = api_error(exc, "m")
    assert (error.status, error.code) == (status, code)
    assert set(error.body()["error"]) == {"message", "type", "param", "code"}


def test_upstream_client_errors_pass_through_with_their_body() -> None:
    body = {"error": {"message": "bad messages", "type": "invalid_request_error",
                      "param": "messages", "code": "x"}}  # fmt: skip
    error = api_error(UpstreamError("400", status=400, body=body), "m")
    assert (error.status, error.message, error.param, error.code) == (400, "bad messages",
                                                                      "messages", "x")  # fmt: skip


def test_limits_are_429_with_their_headers_and_retry_after_is_kept() -> None:
    headers = {"x-ratelimit-limit-requests": "2", "retry-after": "3"}
    limited = api_error(RateLimitExceededError("slow down", limit="requests", retry_after=3,
                                               headers=headers))  # fmt: skip
    assert (limited.status, limited.type, limited.code) == (429, "rate_limit_error",
                                                            "rate_limit_exceeded")  # fmt: skip
    assert limited.headers == headers
    broke = api_error(BudgetExceededError("no money", limit="budget", retry_after=None,
                                          headers={}))  # fmt: skip
    assert (broke.status, broke.type, broke.code) == (429, "insufficient_quota", "budget_exceeded")
    cooled = api_error(failed(UpstreamError("busy", status=429), retry_after=1.2), "m")
    assert cooled.headers == {"retry-after": "2"}


def test_an_api_error_is_answered_as_raised() -> None:
    raised = APIError(418, "teapot", code="tea")
    assert api_error(raised) is raised
