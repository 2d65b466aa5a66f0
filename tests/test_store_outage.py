"""Real outages: the machine's Redis and PostgreSQL behind a TcpProxy the tests kill and restart.

The servers themselves are never stopped: the proxy is the part that "dies". With the proxy
dead, every cache call answers (miss, skipped write) within a second, the open breaker then
answers in microseconds, and hits come back within seconds of the proxy's return.
"""

from __future__ import annotations

import logging
import socket
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from conftest import POSTGRES_URL, REDIS_URL
from thrifty.cache import Cache
from thrifty.errors import BackendUnavailableError
from thrifty.store import open_store
from thrifty.store.health import BreakerState
from thrifty.testing.tcp_proxy import TcpProxy

T = TypeVar("T")
SECRET = "pw-" + uuid.uuid4().hex[:8]


def proxied(url: str, proxy: TcpProxy, *, password: str | None = None) -> str:
    """``url`` pointing at the proxy (and carrying ``password``, when given)."""
    parts = urlsplit(url)
    user = parts.username or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return parts._replace(netloc=f"{auth}{proxy.host}:{proxy.port}").geturl()


def target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (6379 if "redis" in url else 5432)


def private_name(kind: str) -> str:
    tag = uuid.uuid4().hex[:10]
    return (
        f"prefix=thrifty-test-outage-{tag}:" if kind == "redis" else f"table=thrifty_outage_{tag}"
    )


BACKENDS = [
    pytest.param(("redis", REDIS_URL), marks=pytest.mark.redis, id="redis"),
    # PostgreSQL here trusts local connections: the password is sent and ignored, which lets the
    # test check that it never shows.
    pytest.param(("postgres", POSTGRES_URL), marks=pytest.mark.postgres, id="postgres"),
]


@pytest.fixture
def outage_cache(request: pytest.FixtureRequest) -> Iterator[tuple[Cache, TcpProxy]]:
    kind, url = request.param
    with TcpProxy(*target(url)) as proxy:
        password = SECRET if kind == "postgres" else None
        full = proxied(url, proxy, password=password)
        full += ("&" if "?" in full else "?") + private_name(kind)
        cache = Cache(full)
        try:
            yield cache, proxy
        finally:
            proxy.start()
            inner = cache.store.inner  # type: ignore[attr-defined]
            if kind == "postgres":
                inner.drop_tables()
            else:
                inner.clear()
            cache.store.close()


def timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


@pytest.mark.parametrize("outage_cache", BACKENDS, indirect=True)
def test_outage_fails_fast_and_open_then_recovers(
    outage_cache: tuple[Cache, TcpProxy], caplog: pytest.LogCaptureFixture
) -> None:
    cache, proxy = outage_cache
    cache.set("k", "cached answer")
    assert cache.get("k") == "cached answer"

    proxy.stop()  # the backend "dies": open connections cut, new ones refused
    for i in range(5):
        hit, took = timed(cache.lookup, "k")
        assert hit is None and took < 1.0, (i, took)
        entry, took = timed(cache.set, f"k{i}", "v")
        assert entry is None and took < 1.0, (i, took)
    (value, status), took = timed(cache.get_or_compute, "q", lambda: "computed")
    assert (value, status) == ("computed", "miss") and took < 1.0

    health = cache.store.health()
    assert health.state is BreakerState.OPEN and not health.up
    assert sum(health.errors.values()) >= 3 and health.rejected > 0
    times = [timed(cache.lookup, "k")[1] for _ in range(200)]
    assert statistics.median(times) < 200e-6, statistics.median(times)  # microseconds

    proxy.start()  # the backend is back
    started = time.monotonic()
    while cache.get("k") != "cached answer":
        assert time.monotonic() - started < 5, cache.store.health()
        time.sleep(0.05)
    assert cache.store.health().up
    assert cache.set("k2", "after") is not None and cache.get("k2") == "after"

    shown = caplog.text + repr(cache.store) + repr(cache.store.health())
    assert SECRET not in shown


@pytest.mark.parametrize("outage_cache", BACKENDS, indirect=True)
def test_hung_backend_times_out_within_a_second(outage_cache: tuple[Cache, TcpProxy]) -> None:
    cache, proxy = outage_cache
    cache.set("k", "v")
    proxy.stall()  # connections accepted, nothing answered: timeouts, not refusals
    for _ in range(3):  # each call gives up within its bound (no refusal comes to end it)...
        started = time.perf_counter()
        with pytest.raises(BackendUnavailableError, match="during get"):
            cache.store.get("k")
        assert time.perf_counter() - started < 1.0
    assert cache.store.health().state is BreakerState.OPEN
    hit, took = timed(cache.lookup, "k")  # ...and the open breaker then answers at once
    assert hit is None and took < 0.05, took
    proxy.resume()
    started = time.monotonic()
    while cache.get("k") != "v":
        assert time.monotonic() - started < 5, cache.store.health()
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[int]:
    """A private redis-server on another port that requires ``SECRET`` (never the machine's)."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", SECRET,
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield port
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.redis
def test_redis_password_never_shows(
    redis_with_password: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    with pytest.raises(BackendUnavailableError) as wrong:
        open_store(f"redis://:wrong-{SECRET}@127.0.0.1:{redis_with_password}/0")
    shown.append(str(wrong.value))
    with TcpProxy("127.0.0.1", redis_with_password) as proxy:
        cache = Cache(f"redis://:{SECRET}@127.0.0.1:{proxy.port}/0?prefix=t:")
        cache.set("k", "v")
        assert cache.get("k") == "v"
        proxy.stop()
        for _ in range(4):
            with pytest.raises(BackendUnavailableError) as down:
                cache.store.get("k")
            shown.append(str(down.value))
        assert cache.get("k") is None
        shown += [repr(cache.store), repr(cache.store.health()), caplog.text]
        cache.store.close()
    with pytest.raises(BackendUnavailableError) as refused:
        open_store(f"redis://:{SECRET}@127.0.0.1:1/0")
    shown.append(str(refused.value))
    assert all(SECRET not in text for text in shown), [t for t in shown if SECRET in t]
    assert "redis://:***@127.0.0.1:1/0" in shown[-1]


@pytest.mark.postgres
def test_postgres_password_never_shows_when_opening_fails() -> None:
    parts = urlsplit(POSTGRES_URL)
    url = parts._replace(netloc=f"{parts.username or 'postgres'}:{SECRET}@127.0.0.1:1").geturl()
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as refused:
        open_store(url)
    assert time.monotonic() - started < 4
    assert SECRET not in str(refused.value) and ":***@127.0.0.1:1" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            f"{REDIS_URL}?socket_timeout=0.25&connect_timeout=0.2&prefix=t:",
            {"socket_timeout": 0.25, "connect_timeout": 0.2},
            marks=pytest.mark.redis,
            id="redis",
        ),
        pytest.param(
            f"{POSTGRES_URL}?acquire_timeout=0.3&statement_timeout=0.4&table=thrifty_outage_t",
            {"acquire_timeout": 0.3, "statement_timeout": 0.4, "bulk_timeout": 60.0},
            marks=pytest.mark.postgres,
            id="postgres",
        ),
    ],
)
def test_timeouts_from_the_url(url: str, expected: dict[str, float]) -> None:
    store = open_store(url + "&breaker_failures=7")
    plain = open_store(url, breaker=None)
    try:
        timeouts = store.inner.timeouts  # type: ignore[attr-defined]
        assert {k: timeouts[k] for k in expected} == expected
        assert store.policy.failures == 7  # type: ignore[attr-defined]
        assert type(plain).__name__ in ("RedisStore", "PostgresStore")
        assert plain.health().state is None
    finally:
        if hasattr(plain, "drop_tables"):
            plain.drop_tables()
        store.close()
        plain.close()
