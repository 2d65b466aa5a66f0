"""Readiness and metrics say which backend is down (issue 12, items 1 and 8).

Before, ``/health/readiness`` pinged only the cache store, no metric counted a backend error
(``/metrics`` showed every request of a PostgreSQL outage as a plain 200), a stream that broke
mid-way was counted nowhere, and a hung limits store cost every request its timeout. The
machine's Redis is reached through a :class:`TcpProxy` that the tests stop; the server itself is
never touched.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from _gateway import fake_config, gateway, web
from conftest import REDIS_URL
from test_server_upstream_faults import bad_and_good, set_fault, stream
from thrifty.limits import KeyLimits, LimitBackend, LimitState, Reservation
from thrifty.store.health import ErrorTally
from thrifty.testing.fake_openai import FakeOpenAI
from thrifty.testing.tcp_proxy import TcpProxy

KEY = "sk-health-" + uuid.uuid4().hex[:8]


def chat(url: str, text: str) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    return web.post(
        f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    )


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition ``text`` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.redis
def test_readiness_and_metrics_name_the_backend_that_is_down(fake: FakeOpenAI) -> None:
    parts = urlsplit(REDIS_URL)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        url = f"redis://{proxy.host}:{proxy.port}{parts.path or '/0'}"
        config = fake_config(
            fake.base_url,
            keys=[{"key": KEY, "tenant": "health", "rpm": 100000}],
            cache={"url": f"{url}?prefix=thrifty-test-health-{uuid.uuid4().hex[:8]}:"},
            limits={"url": url},
        )
        with gateway(config) as (gw, _):
            ready = web.get(f"{gw}/health/readiness")
            assert ready.status_code == 200, ready.text
            assert set(ready.json()["backends"]) == {"cache", "limits"}
            proxy.stop()
            idle = web.get(f"{gw}/health/readiness")  # no request yet: the pings tell
            answers = [chat(gw, f"question {i}") for i in range(6)]
            assert {a.status_code for a in answers} == {200}  # fail open: all answered
            down = web.get(f"{gw}/health/readiness")
            text = web.get(f"{gw}/metrics").text
            proxy.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # no request needed: readiness pings both
                back = web.get(f"{gw}/health/readiness")
                if back.status_code == 200:
                    break
                time.sleep(0.2)
    assert idle.status_code == 503
    idle_backends = idle.json()["backends"]
    assert not idle_backends["cache"]["up"] and not idle_backends["limits"]["up"]
    assert idle_backends["limits"]["errors"] == {"ping": 1}
    assert down.status_code == 503
    backends: dict[str, Any] = down.json()["backends"]
    assert not backends["cache"]["up"] and not backends["limits"]["up"]
    assert backends["cache"]["last_error"] and backends["limits"]["errors"]["reserve"] >= 1
    assert "cache backend" in down.json()["cache"] and "limits backend" in down.json()["cache"]
    assert metric(text, "thrifty_backend_errors_total", backend="cache", op="get") >= 1
    assert metric(text, "thrifty_backend_errors_total", backend="limits", op="reserve") >= 1
    assert back.status_code == 200, back.text


@pytest.mark.parametrize("fault", ["stall", "reset"])
def test_mid_stream_failures_are_counted(fault: str) -> None:
    with bad_and_good() as (url, bad, _, _):
        set_fault(bad, fault, 2)
        broken = stream(url)
        text = web.get(f"{url}/metrics").text
    assert '"code":"upstream_error"' in broken.text
    assert metric(text, "thrifty_stream_failures_total", model="gpt-4o-mini",
                  phase="mid_stream") == 1  # fmt: skip


def test_first_chunk_failures_are_counted() -> None:
    with bad_and_good() as (url, bad, _, _):
        set_fault(bad, "reset", 0)
        answer = stream(url)
        text = web.get(f"{url}/metrics").text
    assert answer.status_code == 200 and answer.headers["x-thrifty-route"] == "backup#0"
    assert metric(text, "thrifty_stream_failures_total", model="gpt-4o-mini",
                  phase="first_chunk") == 2  # fmt: skip


class FakeDeadLimits(LimitBackend):
    """A limit backend whose every call fails after ``seconds`` (a hung store)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    async def _reserve(
        self, key: str, limits: KeyLimits, tokens: int, cost_usd: float
    ) -> Reservation:
        import asyncio

        self.calls += 1
        await asyncio.sleep(self.seconds)
        raise TimeoutError("Timeout reading from socket")

    async def _settle(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        raise AssertionError("a degraded reservation is never settled")

    async def _state(self, key: str, limits: KeyLimits) -> LimitState:
        return LimitState()

    async def reset(self, key: str) -> None:
        return None


async def test_a_hung_limits_store_costs_three_timeouts_not_one_per_request() -> None:
    dead = FakeDeadLimits(0.05)
    limits = KeyLimits(rpm=10)
    started = time.perf_counter()
    reservations = [await dead.reserve("k", limits) for _ in range(50)]
    seconds = time.perf_counter() - started
    assert all(r.degraded for r in reservations)  # failed open: every request let through
    assert dead.calls == 3 and seconds < 1.0
    health = dead.health()
    assert not health.up and health.errors == {"reserve": 3} and health.rejected == 47


def test_the_tally_probes_after_its_cooldown_and_closes_on_success() -> None:
    now = [0.0]
    tally = ErrorTally("redis://:pw@host:6379/0", failures=2, cooldown=1.0, clock=lambda: now[0])
    seen: list[str] = []
    tally.listener = seen.append
    for _ in range(2):
        assert tally.admit()
        tally.failed("reserve", ConnectionError("refused by redis://:pw@host:6379/0"))
    assert not tally.admit() and not tally.health().up
    now[0] = 1.5
    assert tally.admit() and not tally.admit()  # one probe at a time
    tally.succeeded()
    assert tally.admit() and tally.health().up
    assert seen == ["reserve", "reserve"]
    assert "pw" not in repr(tally.health())


@pytest.mark.redis
async def test_limits_on_the_cache_url_ignore_the_cache_options() -> None:
    """The limits share a Redis cache's URL by default: its ``prefix=`` used to reach redis-py,
    which refused it, so every reservation failed open (now readiness shows such a failure)."""
    from thrifty.limits import open_limits

    backend = open_limits(f"{REDIS_URL}?prefix=thrifty-test-health:&breaker_cooldown=2")
    try:
        assert (await backend.check()).up
        assert not (await backend.reserve("k-" + uuid.uuid4().hex, KeyLimits(rpm=5))).degraded
    finally:
        await backend.aclose()
