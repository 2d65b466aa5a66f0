"""Per-key limits: the same behaviour from the in-memory, Redis and PostgreSQL backends.

The Redis tests use the real server at THRIFTY_TEST_REDIS (default 127.0.0.1:6379), the
PostgreSQL ones THRIFTY_TEST_POSTGRES, and fail when it is unreachable. Both keep their own
clock, so their refill tests wait real (short) times.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from thrifty.accounting.prices import ModelPrice
from thrifty.errors import (
    BudgetExceededError,
    ConfigError,
    LimitExceededError,
    RateLimitExceededError,
)
from thrifty.limits import (
    KeyLimits,
    LimitBackend,
    MemoryLimitBackend,
    format_reset,
    max_cost_usd,
    open_limits,
)
from thrifty.limits.postgres import PostgresLimitBackend

POSTGRES_URL = os.environ.get("THRIFTY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("THRIFTY_TEST_REDIS", "redis://127.0.0.1:6379/0")


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Limits:
    """A backend under test, a fresh key, and a way to let time pass."""

    def __init__(self, kind: str, backend: LimitBackend, clock: Clock | None) -> None:
        self.kind = kind
        self.backend = backend
        self.clock = clock
        self.key = f"test-{uuid.uuid4().hex[:12]}"

    async def advance(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.now += seconds
        else:
            await asyncio.sleep(seconds)


async def _redis_backend(**options: object) -> LimitBackend:
    import redis.asyncio as redis_asyncio

    probe = redis_asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=1.0)
    try:
        await probe.ping()
    except Exception as exc:
        pytest.fail(
            f"Redis at {REDIS_URL} is unreachable ({exc}); start it with "
            "`redis-server --daemonize yes` (or set THRIFTY_TEST_REDIS)"
        )
    finally:
        await probe.aclose()
    return open_limits(REDIS_URL, **options)


def _postgres_backend(**options: object) -> LimitBackend:
    """A PostgreSQL backend on tables of its own (dropped by the caller)."""
    table = f"limits_{uuid.uuid4().hex[:12]}"
    return open_limits(f"{POSTGRES_URL}?table={table}", **options)


@pytest.fixture(params=["memory", "redis", pytest.param("postgres", marks=pytest.mark.postgres)])
async def limits(request: pytest.FixtureRequest) -> AsyncIterator[Limits]:
    if request.param == "memory":
        clock = Clock()
        under_test = Limits("memory", MemoryLimitBackend(clock=clock), clock)
    elif request.param == "redis":
        under_test = Limits("redis", await _redis_backend(), None)
    else:  # its own clock by default; the memory backend's fake one keeps the timing exact
        clock = Clock()
        under_test = Limits("postgres", _postgres_backend(clock=clock), clock)
    yield under_test
    await under_test.backend.reset(under_test.key)
    if isinstance(under_test.backend, PostgresLimitBackend):
        under_test.backend.drop_tables()
    await under_test.backend.aclose()


async def test_a_key_without_limits_is_never_counted(limits: Limits) -> None:
    reservation = await limits.backend.reserve(limits.key, KeyLimits(), tokens=10**9, cost_usd=99)
    assert reservation.id == "" and not reservation.degraded
    assert reservation.state.headers() == {}
    await limits.backend.settle(reservation, tokens=10**9, cost_usd=99)
    assert (await limits.backend.state(limits.key, KeyLimits(max_budget_usd=1))).spent_usd == 0


async def test_requests_per_minute(limits: Limits) -> None:
    rules = KeyLimits(rpm=3)
    remaining = []
    for _ in range(3):
        reservation = await limits.backend.reserve(limits.key, rules)
        remaining.append(reservation.state.headers()["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    with pytest.raises(RateLimitExceededError) as raised:
        await limits.backend.reserve(limits.key, rules)
    refusal = raised.value
    assert refusal.limit == "requests"
    assert refusal.retry_after == pytest.approx(20.0, abs=0.1)  # one request refills in 60/3 s
    assert refusal.headers["x-ratelimit-limit-requests"] == "3"
    assert refusal.headers["x-ratelimit-remaining-requests"] == "0"
    assert refusal.headers["retry-after"] == "20"
    assert 19_900 <= int(refusal.headers["retry-after-ms"]) <= 20_000  # a shared clock ticks on
    assert refusal.headers["x-ratelimit-reset-requests"].endswith("s")
    assert "Rate limit reached for requests" in str(refusal)


async def test_the_request_bucket_refills_continuously(limits: Limits) -> None:
    rules = KeyLimits(rpm=60)  # one a second
    for _ in range(60):
        await limits.backend.reserve(limits.key, rules)
    with pytest.raises(RateLimitExceededError):
        await limits.backend.reserve(limits.key, rules)
    await limits.advance(1.05)
    await limits.backend.reserve(limits.key, rules)
    with pytest.raises(RateLimitExceededError):
        await limits.backend.reserve(limits.key, rules)


async def test_tokens_per_minute_counts_prompt_then_output(limits: Limits) -> None:
    rules = KeyLimits(tpm=1000)
    first = await limits.backend.reserve(limits.key, rules, tokens=300)
    assert first.state.headers()["x-ratelimit-remaining-tokens"] == "700"
    await limits.backend.settle(first, tokens=300 + 500, cost_usd=0.0)  # 500 output tokens
    state = await limits.backend.state(limits.key, rules)
    assert state.remaining_tokens == pytest.approx(200, abs=5)
    with pytest.raises(RateLimitExceededError) as raised:
        await limits.backend.reserve(limits.key, rules, tokens=300)
    assert raised.value.limit == "tokens"
    assert raised.value.retry_after == pytest.approx(6.0, abs=0.3)  # 100 tokens at 1000/60 a s
    assert raised.value.headers["x-ratelimit-limit-tokens"] == "1000"


async def test_settling_fewer_tokens_than_reserved_gives_them_back(limits: Limits) -> None:
    rules = KeyLimits(tpm=1000)
    reservation = await limits.backend.reserve(limits.key, rules, tokens=900)
    await limits.backend.settle(reservation, tokens=100, cost_usd=0.0)
    await limits.backend.reserve(limits.key, rules, tokens=800)


async def test_a_prompt_larger_than_the_tpm_is_refused_for_good(limits: Limits) -> None:
    with pytest.raises(RateLimitExceededError, match="Request too large") as raised:
        await limits.backend.reserve(limits.key, KeyLimits(tpm=100), tokens=101)
    assert raised.value.retry_after is None and "retry-after" not in raised.value.headers


async def test_budget_counts_spend_and_reservations(limits: Limits) -> None:
    rules = KeyLimits(max_budget_usd=1.0)
    first = await limits.backend.reserve(limits.key, rules, cost_usd=0.6)
    assert first.state.reserved_usd == pytest.approx(0.6)
    with pytest.raises(BudgetExceededError) as raised:
        await limits.backend.reserve(limits.key, rules, cost_usd=0.5)
    assert raised.value.limit == "budget" and raised.value.retry_after is None
    assert "Budget exceeded" in str(raised.value)
    await limits.backend.settle(first, tokens=0, cost_usd=0.2)  # it cost less than feared
    state = await limits.backend.state(limits.key, rules)
    assert state.spent_usd == pytest.approx(0.2) and state.reserved_usd == 0
    second = await limits.backend.reserve(limits.key, rules, cost_usd=0.5)
    await limits.backend.release(second)  # the call failed: nothing spent
    third = await limits.backend.reserve(limits.key, rules, cost_usd=0.8)
    await limits.backend.settle(third, tokens=0, cost_usd=0.8)
    with pytest.raises(BudgetExceededError):  # spent 1.0 of 1.0: even a free call is refused
        await limits.backend.reserve(limits.key, rules, cost_usd=0.0)


async def test_settling_twice_does_not_free_twice(limits: Limits) -> None:
    rules = KeyLimits(max_budget_usd=1.0)
    held = await limits.backend.reserve(limits.key, rules, cost_usd=0.5)
    other = await limits.backend.reserve(limits.key, rules, cost_usd=0.5)
    await limits.backend.release(other)
    await limits.backend.release(other)
    state = await limits.backend.state(limits.key, rules)
    assert state.reserved_usd == pytest.approx(0.5)
    await limits.backend.release(held)


async def test_a_refusal_takes_nothing(limits: Limits) -> None:
    rules = KeyLimits(rpm=10, tpm=1000, max_budget_usd=0.1)
    with pytest.raises(BudgetExceededError):
        await limits.backend.reserve(limits.key, rules, tokens=500, cost_usd=0.2)
    state = await limits.backend.state(limits.key, rules)
    assert state.remaining_requests == pytest.approx(10)
    assert state.remaining_tokens == pytest.approx(1000)
    assert state.reserved_usd == 0


async def test_concurrent_burst_cannot_overspend(limits: Limits) -> None:
    rules = KeyLimits(max_budget_usd=1.0)

    async def one() -> bool:
        try:
            await limits.backend.reserve(limits.key, rules, cost_usd=0.1)
        except BudgetExceededError:
            return False
        return True

    accepted = await asyncio.gather(*(one() for _ in range(50)))
    assert sum(accepted) == 10


async def test_concurrent_burst_respects_rpm(limits: Limits) -> None:
    rules = KeyLimits(rpm=7)

    async def one() -> bool:
        try:
            await limits.backend.reserve(limits.key, rules)
        except RateLimitExceededError:
            return False
        return True

    assert sum(await asyncio.gather(*(one() for _ in range(40)))) == 7


async def test_reservations_never_settled_lapse() -> None:
    clock = Clock()
    backend = MemoryLimitBackend(clock=clock, reservation_ttl=30.0)
    rules = KeyLimits(max_budget_usd=1.0)
    await backend.reserve("k", rules, cost_usd=1.0)  # its caller crashed and never settles
    with pytest.raises(BudgetExceededError):
        await backend.reserve("k", rules, cost_usd=0.1)
    clock.now += 31
    await backend.reserve("k", rules, cost_usd=0.1)


async def test_redis_reservations_never_settled_lapse() -> None:
    backend = await _redis_backend(reservation_ttl=0.3)
    key = f"test-{uuid.uuid4().hex[:12]}"
    rules = KeyLimits(max_budget_usd=1.0)
    try:
        await backend.reserve(key, rules, cost_usd=1.0)
        with pytest.raises(BudgetExceededError):
            await backend.reserve(key, rules, cost_usd=0.1)
        await asyncio.sleep(0.4)
        await backend.reserve(key, rules, cost_usd=0.1)
    finally:
        await backend.reset(key)
        await backend.aclose()


async def test_redis_replicas_share_counters() -> None:
    # a generous timeout: a call slower than the default 0.5 s on a busy machine fails open by
    # design (the request goes through unchecked), which is not what this test counts
    replicas = [await _redis_backend(timeout=5.0) for _ in range(3)]
    key = f"test-{uuid.uuid4().hex[:12]}"
    rules = KeyLimits(rpm=1000, max_budget_usd=2.0)

    async def one(backend: LimitBackend) -> bool:
        try:
            reservation = await backend.reserve(key, rules, cost_usd=0.1)
        except LimitExceededError:
            return False
        await asyncio.sleep(0.01)
        await backend.settle(reservation, tokens=0, cost_usd=0.05)
        return True

    try:
        results = await asyncio.gather(*(one(replicas[i % 3]) for i in range(60)))
        state = await replicas[0].state(key, rules)
        # 0.05 spent per accepted call; never more than the budget, whatever the interleaving
        assert 20 <= sum(results) <= 40
        assert state.spent_usd == pytest.approx(0.05 * sum(results))
        assert state.spent_usd <= 2.0 and state.reserved_usd == 0
    finally:
        await replicas[0].reset(key)
        for backend in replicas:
            await backend.aclose()


def test_memory_backend_is_safe_across_threads() -> None:
    backend = MemoryLimitBackend()
    rules = KeyLimits(max_budget_usd=1.0)
    accepted: list[bool] = []
    start = threading.Barrier(20)

    def worker() -> None:
        async def burst() -> None:
            for _ in range(5):
                try:
                    await backend.reserve("shared", rules, cost_usd=0.1)
                except BudgetExceededError:
                    accepted.append(False)
                else:
                    accepted.append(True)

        start.wait()
        asyncio.run(burst())

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(accepted) == 10 and len(accepted) == 100


async def test_an_unreachable_redis_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    backend = open_limits("redis://127.0.0.1:1/0", timeout=0.2)
    rules = KeyLimits(rpm=1, max_budget_usd=0.0)
    with caplog.at_level(logging.WARNING, logger="thrifty.limits"):
        started = time.perf_counter()
        reservation = await backend.reserve("k", rules, tokens=5, cost_usd=1.0)
        await backend.settle(reservation, tokens=5, cost_usd=1.0)
    assert reservation.degraded and time.perf_counter() - started < 2.0
    assert "letting the request through" in caplog.text
    await backend.aclose()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0ms"),
        (0.0201, "21ms"),
        (1.0, "1s"),
        (6.5, "6.5s"),
        (360.0, "6m0s"),
        (61.25, "1m1.25s"),
    ],
)
def test_reset_durations_read_like_openais(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text


def test_max_cost_prices_the_prompt_and_the_most_output() -> None:
    price = ModelPrice(input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    assert max_cost_usd(price, 100, 50) == pytest.approx(100e-6 + 100e-6)
    assert max_cost_usd(price, 0, None) == pytest.approx(4096 * 2e-6)
    assert max_cost_usd(None, 100, 50) == 0.0


@pytest.mark.parametrize(
    "build",
    [
        lambda: KeyLimits(rpm=-1),
        lambda: KeyLimits(max_budget_usd=-0.5),
        lambda: open_limits("mysql://x"),
    ],
)
def test_bad_limits_are_config_errors(build: Callable[[], object]) -> None:
    with pytest.raises(ConfigError):
        build()


async def test_negative_amounts_are_refused() -> None:
    with pytest.raises(ValueError):
        await MemoryLimitBackend().reserve("k", KeyLimits(rpm=1), tokens=-1)
