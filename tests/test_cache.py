"""``thrifty.Cache`` over every backend: lifetimes, invalidation, accounting, tenants, faults."""

from __future__ import annotations

import time
from typing import Any

import pytest

from conftest import Backend
from thrifty.cache import Cache
from thrifty.errors import ConfigError

REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 2+2?"}]}


def test_get_set_and_stats(cache: Cache) -> None:
    key = cache.key(REQUEST)
    assert cache.get(key) is None
    entry = cache.set(key, {"answer": 4}, model="gpt-4o-mini", tokens_in=10, tokens_out=5,
                      cost_usd=0.002)  # fmt: skip
    assert entry is not None
    assert cache.get(key) == {"answer": 4}
    hit = cache.lookup(key)
    assert hit is not None and hit.kind == "hit" and hit.entry.tokens_in == 10
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.errors) == (2, 1, 0)
    assert stats.tokens_saved == 30
    assert stats.usd_saved == pytest.approx(0.004)
    assert stats.entries == 1 and stats.bytes == entry.size
    assert stats.hit_rate == pytest.approx(2 / 3)


def test_values_round_trip(cache: Cache) -> None:
    value: dict[str, Any] = {
        "text": "héllo",
        "n": [1, 2.5, None, True],
        "t": (1, "a"),
        "b": b"\x00",
    }
    cache.set("k", value)
    assert cache.get("k") == value


def test_per_entry_ttl(cache: Cache) -> None:
    cache.set("short", "s", ttl=0.3)
    cache.set("long", "l")
    assert cache.get("short") == "s"
    time.sleep(0.4)
    assert cache.get("short") is None
    assert cache.get("long") == "l"


def test_namespace_ttl(backend: Backend) -> None:
    cache = backend.cache(ttl=60, namespace_ttl={"news": 0.3})
    cache.set("n", "headline", namespace="news")
    cache.set("d", "evergreen")
    news, plain = cache.store.get("n"), cache.store.get("d")
    assert news is not None and plain is not None and news.expires_at and plain.expires_at
    assert news.expires_at - news.created_at == pytest.approx(0.3)
    assert plain.expires_at - plain.created_at == pytest.approx(60)
    time.sleep(0.4)
    assert cache.get("n", namespace="news") is None
    assert cache.get("d") == "evergreen"


def test_invalidate(cache: Cache) -> None:
    cache.set("a", 1, model="m", model_version="v1", tags=["doc:1"], user_id="u1")
    cache.set("b", 2, model="m", model_version="v2", tags=["doc:2"], user_id="u2")
    cache.set("c", 3, model="n", model_version="v1", namespace="other", user_id="u1")
    assert cache.invalidate(model="m", model_version="v1") == 1
    assert cache.invalidate(tag="doc:2") == 1
    assert cache.invalidate(user_id="u1", namespace="other") == 1
    assert cache.stats().entries == 0
    with pytest.raises(ConfigError):
        cache.invalidate()


def test_eviction_limits_through_cache(backend: Backend) -> None:
    cache = backend.cache(max_entries=2)
    for i in range(4):
        cache.set(f"k{i}", i)
        time.sleep(0.002)  # distinct creation times
    assert [cache.get(f"k{i}") for i in range(4)] == [None, None, 2, 3]
    assert cache.stats().entries == 2


def test_tenants_are_isolated(cache: Cache) -> None:
    key_a = cache.key(REQUEST, namespace="tenant-a")
    key_b = cache.key(REQUEST, namespace="tenant-b")
    assert key_a != key_b
    cache.set(key_a, "a's answer", namespace="tenant-a")
    assert cache.get(key_b, namespace="tenant-b") is None
    assert cache.get(key_a, namespace="tenant-a") == "a's answer"
    assert cache.stats("tenant-b").misses == 1 and cache.stats("tenant-b").hits == 0
    assert cache.stats("tenant-a").hits == 1 and cache.stats("tenant-a").entries == 1
    assert cache.stats("tenant-b").entries == 0


def test_corrupt_entry_is_a_miss_and_removed(backend: Backend) -> None:
    cache = backend.cache()
    cache.set("k", "good")
    backend.corrupt(cache.store, "k")
    assert cache.get("k") is None
    assert cache.store.get("k") is None
    assert cache.stats().entries == 0
    cache.set("k", "good again")
    assert cache.get("k") == "good again"


def test_failing_backend_is_fail_open(cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("backend down")

    for method in ("get", "set", "set_many", "acquire_lease", "release_lease", "add_counters"):
        monkeypatch.setattr(cache.store, method, broken)
    calls = []

    def compute() -> str:
        calls.append(1)
        return "fresh"

    value, status = cache.get_or_compute("k", compute)
    assert (value, status, len(calls)) == ("fresh", "miss", 1)
    assert cache.set("k2", "v") is None
    assert cache.get("k2") is None
    monkeypatch.undo()
    stats = cache.stats()
    assert stats.errors >= 4
    assert stats.misses == 2  # the counters kept while the backend was down are not lost


async def test_async_face(cache: Cache) -> None:
    await cache.aset("k", [1, 2])
    assert await cache.aget("k") == [1, 2]
    assert (await cache.alookup("k")) is not None
    assert await cache.ainvalidate(namespace="default") == 1
    stats = await cache.astats()
    assert stats.hits == 2 and stats.entries == 0


def test_dead_redis_after_open_is_fail_open() -> None:
    from conftest import REDIS_URL
    from thrifty.testing.tcp_proxy import TcpProxy

    host, port = REDIS_URL.split("://", 1)[1].split("/")[0].rsplit(":", 1)
    with TcpProxy(host, int(port)) as proxy:
        backend = Backend("redis", f"redis://{host}:{proxy.port}/0?prefix=thrifty-test-dead:")
        cache = backend.cache()
        proxy.stop()  # Redis "dies" after the cache opened it
        value, status = cache.get_or_compute("k", lambda: "computed")
        assert (value, status) == ("computed", "miss")
        assert cache.stats().errors >= 3  # get, lease, set (and stats itself)
        proxy.start()
        deadline = time.monotonic() + 5  # the breaker's probe finds it back within a cooldown
        while cache.set("k", "stored again") is None:
            assert time.monotonic() < deadline, cache.store.health()
            time.sleep(0.05)
        assert cache.get("k") == "stored again" and cache.store.health().up
        backend.cleanup()


def test_dead_postgres_after_open_is_fail_open() -> None:
    from conftest import POSTGRES_URL

    backend = Backend("postgres", f"{POSTGRES_URL}?table=thrifty_test_dead")
    cache = backend.cache()
    cache.store.drop_tables()  # type: ignore[attr-defined]
    cache.store.close()  # every later call fails: the pool is closed
    value, status = cache.get_or_compute("k", lambda: "computed")
    assert (value, status) == ("computed", "miss")
    assert cache.stats().errors >= 3
