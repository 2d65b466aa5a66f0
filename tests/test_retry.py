"""Retries: backoff with full jitter, Retry-After parsing, which errors are retried."""

from __future__ import annotations

import asyncio
import email.utils

import aiohttp
import httpx
import pytest

from thrifty.errors import ConfigError, UpstreamConnectionError, UpstreamError
from thrifty.retry import (
    RetryPolicy,
    call_with_retries,
    is_retryable_error,
    is_retryable_status,
    retry_after_seconds,
)


class StatusError(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"status {status}")
        self.status = status
        self.headers = headers or {}


class Flaky:
    """Fails with the given errors in turn, then answers."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_backoff_doubles_up_to_the_ceiling_without_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=False)
    assert [policy.backoff(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_full_jitter_spreads_waits_between_zero_and_the_ceiling() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0)
    assert policy.backoff(2, rng=lambda: 0.0) == 0.0
    assert policy.backoff(2, rng=lambda: 0.5) == 2.0
    waits = [policy.backoff(3) for _ in range(500)]
    assert 0.0 <= min(waits) < 1.0 and 7.0 < max(waits) <= 8.0


def test_a_huge_attempt_number_does_not_overflow() -> None:
    assert RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=False).backoff(10_000) == 5.0


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(num_retries=-1)
    with pytest.raises(ConfigError):
        RetryPolicy(base_delay=-0.1)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (422, False),
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
def test_retryable_statuses(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable
    assert is_retryable_error(StatusError(status)) is retryable


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError(),
        ConnectionRefusedError(),
        ConnectionResetError(),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientConnectionError("refused"),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        UpstreamConnectionError("refused", provider="fake upstream"),
        UpstreamError("overloaded", status=503),
    ],
)
def test_transport_failures_are_retryable(error: BaseException) -> None:
    assert is_retryable_error(error)


@pytest.mark.parametrize(
    "error",
    [ValueError("bug"), KeyError("x"), UpstreamError("bad request", status=400)],
)
def test_other_errors_are_not_retryable(error: BaseException) -> None:
    assert not is_retryable_error(error)


def test_a_cause_chained_with_raise_from_is_looked_at() -> None:
    class Wrapped(Exception):
        pass

    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as inner:
            raise Wrapped("upstream failed") from inner
    except Wrapped as outer:
        assert is_retryable_error(outer)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"RETRY-AFTER": "0"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "junk", "retry-after": "3"}, 3.0),
        ({"retry-after": "-4"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
        (None, None),
        ([("Retry-After", "7")], 7.0),
    ],
)
def test_retry_after_seconds(headers: object, seconds: float | None) -> None:
    assert retry_after_seconds(headers) == seconds


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    in_five = email.utils.formatdate(now + 5, usegmt=True)
    in_the_past = email.utils.formatdate(now - 60, usegmt=True)
    assert retry_after_seconds({"Retry-After": in_five}, now=now) == pytest.approx(5.0)
    assert retry_after_seconds({"Retry-After": in_the_past}, now=now) == 0.0


def test_retry_after_from_case_insensitive_multidicts() -> None:
    from multidict import CIMultiDict

    assert retry_after_seconds(CIMultiDict({"Retry-After": "4"})) == 4.0
    assert retry_after_seconds(httpx.Headers({"Retry-After-Ms": "1500"})) == 1.5


async def test_retries_until_success_waiting_the_backoff() -> None:
    fn, sleep = Flaky(StatusError(503), ConnectionResetError()), Sleeps()
    policy = RetryPolicy(num_retries=3, base_delay=0.5, jitter=False)
    assert await call_with_retries(fn, policy, sleep=sleep) == "ok"
    assert fn.calls == 3
    assert sleep.waits == [0.5, 1.0]


async def test_waits_at_least_retry_after() -> None:
    fn, sleep = Flaky(StatusError(429, {"retry-after": "3"}), StatusError(429)), Sleeps()
    policy = RetryPolicy(num_retries=2, base_delay=0.5, jitter=False)
    assert await call_with_retries(fn, policy, sleep=sleep) == "ok"
    assert sleep.waits == [3.0, 1.0]  # Retry-After beats the 0.5 s backoff; none the second time


async def test_backoff_beats_a_shorter_retry_after() -> None:
    fn, sleep = Flaky(StatusError(429, {"retry-after-ms": "10"})), Sleeps()
    await call_with_retries(fn, RetryPolicy(base_delay=2.0, jitter=False), sleep=sleep)
    assert sleep.waits == [2.0]


async def test_client_errors_are_raised_at_once() -> None:
    fn, sleep = Flaky(StatusError(400)), Sleeps()
    with pytest.raises(StatusError):
        await call_with_retries(fn, RetryPolicy(num_retries=5), sleep=sleep)
    assert fn.calls == 1 and sleep.waits == []


async def test_gives_up_after_num_retries_with_the_last_error() -> None:
    errors = [StatusError(500), StatusError(502), StatusError(503)]
    fn, sleep = Flaky(*errors), Sleeps()
    with pytest.raises(StatusError) as raised:
        await call_with_retries(fn, RetryPolicy(num_retries=2, jitter=False), sleep=sleep)
    assert raised.value is errors[2]
    assert fn.calls == 3 and len(sleep.waits) == 2


async def test_a_retry_after_too_long_is_not_waited_for() -> None:
    fn, sleep = Flaky(StatusError(429, {"retry-after": "3600"})), Sleeps()
    with pytest.raises(StatusError):
        await call_with_retries(fn, RetryPolicy(max_retry_after=60), sleep=sleep)
    assert sleep.waits == []


async def test_a_wait_past_the_deadline_is_not_made() -> None:
    import time

    fn, sleep = Flaky(StatusError(503, {"retry-after": "10"})), Sleeps()
    with pytest.raises(StatusError):
        await call_with_retries(fn, RetryPolicy(), sleep=sleep, deadline=time.monotonic() + 1.0)
    assert sleep.waits == []


async def test_on_retry_sees_each_attempt_and_custom_predicates_apply() -> None:
    seen: list[tuple[int, str, float]] = []
    fn = Flaky(ValueError("transient by our own rule"), ValueError("again"))
    result = await call_with_retries(
        fn,
        RetryPolicy(num_retries=2, base_delay=0.1, jitter=False),
        is_retryable=lambda exc: isinstance(exc, ValueError),
        sleep=Sleeps(),
        on_retry=lambda n, exc, delay: seen.append((n, str(exc), delay)),
    )
    assert result == "ok"
    assert seen == [(0, "transient by our own rule", 0.1), (1, "again", 0.2)]


async def test_real_sleep_is_the_default() -> None:
    fn = Flaky(StatusError(503))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await call_with_retries(fn, RetryPolicy(base_delay=0.05, jitter=False))
    assert loop.time() - started >= 0.045


async def test_cancellation_is_not_retried() -> None:
    calls = 0

    async def hangs() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)

    task = asyncio.create_task(call_with_retries(hangs, RetryPolicy(num_retries=5)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1
