"""Budgets that hold under concurrency: per key and per tenant, in all or per UTC day/month,
reserved before the upstream call and settled after, on every limits backend."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from _gateway import fake_config, gateway, web
from conftest import POSTGRES_URL, REDIS_URL
from thrifty.errors import BudgetExceededError, ConfigError
from thrifty.limits import KeyLimits, LimitBackend, budget_key, open_limits
from thrifty.limits.postgres import PostgresLimitBackend
from thrifty.server.auth import key_id
from thrifty.server.limiter import TENANT_PREFIX
from thrifty.testing.fake_openai import FakeOpenAI

BACKENDS = ["memory", "redis", pytest.param("postgres", marks=pytest.mark.postgres)]
DEC_3 = 1_764_763_200.0  # 2025-12-03T12:00:00Z


def _limits_url(kind: str) -> str:
    return {
        "memory": "memory://",
        # a loaded test machine must not make Redis calls time out (and fail open)
        "redis": f"{REDIS_URL}?timeout=5",
        "postgres": f"{POSTGRES_URL}?table=limits_{uuid.uuid4().hex[:12]}",
    }[kind]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[LimitBackend]:
    opened = open_limits(_limits_url(request.param))
    yield opened
    if isinstance(opened, PostgresLimitBackend):
        opened.drop_tables()
    await opened.aclose()


def test_a_period_budget_counts_each_day_or_month_apart() -> None:
    daily = KeyLimits(max_budget_usd=1.0, budget_period="day")
    monthly = KeyLimits(max_budget_usd=1.0, budget_period="month")
    assert budget_key("k", daily, DEC_3) == "k@2025-12-03"
    assert budget_key("k", daily, DEC_3 + 86400) == "k@2025-12-04"
    assert budget_key("k", monthly, DEC_3) == "k@2025-12"
    assert budget_key("k", KeyLimits(max_budget_usd=1.0), DEC_3) == "k"
    assert budget_key("k", KeyLimits(rpm=5, budget_period="day"), DEC_3) == "k"  # no budget
    with pytest.raises(ConfigError):
        KeyLimits(max_budget_usd=1.0, budget_period="week")  # type: ignore[arg-type]


@pytest.mark.parametrize("period", ["total", "day"])
async def test_fifty_concurrent_first_requests_never_overspend(
    backend: LimitBackend, period: str
) -> None:
    """Each reserves the most it can cost, waits for its "upstream", settles what it cost."""
    key = f"new-{uuid.uuid4().hex[:12]}"
    limits = KeyLimits(max_budget_usd=1.0, budget_period=period)  # type: ignore[arg-type]
    worst = 0.07
    rng = random.Random(7)
    costs = [rng.uniform(0.01, worst) for _ in range(50)]

    async def one(cost: float) -> float:
        try:
            reservation = await backend.reserve(key, limits, tokens=10, cost_usd=worst)
        except BudgetExceededError:
            return 0.0
        await asyncio.sleep(rng.uniform(0.0, 0.02))
        await backend.settle(reservation, tokens=20, cost_usd=cost)
        return cost

    spent = await asyncio.gather(*(one(c) for c in costs))
    accepted = sum(1 for s in spent if s > 0)
    assert sum(spent) <= limits.max_budget_usd  # type: ignore[operator]
    assert accepted >= int(1.0 / worst)  # at least what fits at the worst case
    state = await backend.state(key, limits)
    assert state.spent_usd == pytest.approx(sum(spent)) and state.reserved_usd == 0
    await backend.reset(budget_key(key, limits))  # leave no counters behind (Redis)


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_tenants_keys_together_never_overspend_its_budget(fake: FakeOpenAI, kind: str) -> None:
    """50 concurrent first requests over two new keys of a new tenant, through the gateway:
    the tenant's daily budget holds (each key alone could spend more)."""
    keys = [f"sk-{uuid.uuid4().hex}" for _ in range(2)]
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    budget = 0.002
    config = fake_config(
        fake.base_url,
        keys=[{"key": k, "tenant": tenant, "max_budget_usd": 1.0} for k in keys],
        limits={"url": _limits_url(kind),
                "tenants": {tenant: {"max_budget_usd": budget, "budget_period": "day"}}},
        prices={"gpt-4o-mini": {"input_cost_per_token": 1e-5, "output_cost_per_token": 1e-5}},
        ledger={"url": "memory://"},
    )  # fmt: skip
    fake.delay = 0.05  # requests overlap

    def one(i: int) -> int:
        body = {
            "model": "gpt-4o-mini",
            "max_tokens": 40,  # the fake's answers are shorter: the worst case holds
            "messages": [{"role": "user", "content": f"question number {i}"}],
        }
        headers = {"Authorization": f"Bearer {keys[i % 2]}"}
        return web.post(f"{url}/v1/chat/completions", json=body, headers=headers).status_code

    with gateway(config) as (url, app):
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(one, range(50)))
        gw: Any = app.state.gateway
        gw.ledger.flush()
        spent = gw.ledger.ledger.summary(tenant=tenant).totals.cost_usd
        counters = [key_id(k) for k in keys]
        counters.append(budget_key(TENANT_PREFIX + tenant, gw.limiter.tenants[tenant]))
        backend = gw.limiter.backend
        if isinstance(backend, PostgresLimitBackend):
            backend.drop_tables()
    if kind == "redis":  # the counters are new to this test: leave none behind

        async def forget() -> None:
            redis = open_limits(REDIS_URL)
            for name in counters:
                await redis.reset(name)
            await redis.aclose()

        asyncio.run(forget())
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1
    assert set(statuses) <= {200, 429}
    assert 0 < spent <= budget


async def test_a_burst_larger_than_the_connection_pool_is_still_checked(
    backend: LimitBackend,
) -> None:
    """150 reservations at once: none let through unchecked (Redis's default pool refused past
    100 connections at once, and the fail-open path then skipped the budget)."""
    key = f"burst-{uuid.uuid4().hex[:12]}"
    limits = KeyLimits(max_budget_usd=1.0)

    async def one() -> bool:
        try:
            reservation = await backend.reserve(key, limits, cost_usd=0.1)
        except BudgetExceededError:
            return False
        assert not reservation.degraded
        return True

    assert sum(await asyncio.gather(*(one() for _ in range(150)))) == 10
    await backend.reset(key)
