"""RPM/TPM buckets: even spacing, debt settled after the answer, pauses on Retry-After."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time

import pytest

from thrifty.batching.limiter import BatchLimiter, TokenBucket
from thrifty.errors import ConfigError


def test_rejects_non_positive_limits() -> None:
    with pytest.raises(ConfigError):
        BatchLimiter(rpm=0)
    with pytest.raises(ConfigError):
        TokenBucket(1.0, 0.0)


async def test_rpm_spaces_requests_evenly() -> None:
    limiter = BatchLimiter(rpm=1200)  # 20 per second: one every 50 ms, no burst
    started = time.monotonic()
    stamps = []
    for _ in range(11):
        await limiter.acquire(0)
        stamps.append(time.monotonic() - started)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert stamps[0] < 0.05  # the first goes at once
    assert statistics.median(gaps) == pytest.approx(0.05, abs=0.01)
    assert stamps[-1] >= 0.49  # a late wake-up may catch up, never run ahead


async def test_about_a_second_of_requests_in_any_second() -> None:
    limiter = BatchLimiter(rpm=600)
    started = time.monotonic()
    stamps = []

    async def one() -> None:
        await limiter.acquire(0)
        stamps.append(time.monotonic() - started)

    await asyncio.gather(*(one() for _ in range(25)))
    stamps.sort()
    assert stamps[-1] >= 2.35  # 25 requests at 10 per second
    for i, t in enumerate(stamps):
        in_window = [s for s in stamps[i:] if s < t + 1.0]
        assert len(in_window) <= 11  # one request of catch-up slack after a late wake-up


async def test_tokens_taken_before_and_settled_after() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=100.0, capacity=100.0, clock=lambda: now[0])
    await bucket.acquire(60)
    assert bucket.level == pytest.approx(40)
    bucket.settle(70)  # the answer used 70 more tokens: debt
    assert bucket.level == pytest.approx(-30)
    assert bucket.wait_time(10) == pytest.approx(0.4)
    bucket.settle(-50)  # a refused request gives its tokens back
    assert bucket.level == pytest.approx(20)


async def test_a_request_bigger_than_the_bucket_still_goes() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10.0, capacity=10.0, clock=lambda: now[0])
    assert bucket.wait_time(500) == 0.0
    await bucket.acquire(500)
    assert bucket.level == pytest.approx(-490)
    assert bucket.wait_time(1) == pytest.approx(49.1)


async def test_pause_holds_everyone_then_resumes_one_at_a_time() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10.0, capacity=1.0, clock=lambda: now[0])
    bucket.pause(2.0)
    assert bucket.wait_time(1) == pytest.approx(2.0)
    now[0] = 2.0
    assert bucket.wait_time(1) == 0.0
    await bucket.acquire(1)
    assert bucket.wait_time(1) == pytest.approx(0.1)


async def test_limiter_settles_tokens_and_pauses_both_buckets() -> None:
    now = [0.0]
    limiter = BatchLimiter(rpm=60, tpm=6000, clock=lambda: now[0])
    await limiter.acquire(50)
    limiter.settle(50, 40, 200)  # prompt was 10 fewer, 200 output tokens
    assert limiter.tokens is not None and limiter.tokens.level == pytest.approx(100 - 240)
    limiter.pause(3.0)
    assert limiter.requests is not None and limiter.requests.wait_time(1) == pytest.approx(3.0)
