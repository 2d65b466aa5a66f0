"""Drops reach every replica at once (``cache/broadcast.py``, ``store/bus.py``): two caches
(two replicas) on the machine's Redis or PostgreSQL, each with its own in-process semantic
index; what one deletes, invalidates, purges or clears leaves the other's index within a
bounded time, over real pub/sub (Redis) and LISTEN/NOTIFY (PostgreSQL) connections. A replica
whose subscription went through a killed TCP proxy (never the real server) missed the
messages sent meanwhile, and drops its local copies when it subscribes again: the entries
invalidated while it was deaf neither linger in its index nor are served."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from conftest import POSTGRES_URL, REDIS_URL
from thrifty.cache import Cache, SemanticSettings
from thrifty.errors import ConfigError
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.testing.tcp_proxy import TcpProxy

#: Seconds within which a drop must reach the other replica (measured: milliseconds).
BOUND_S = 2.0
RUN = uuid.uuid4().hex[:10]


def chat(question: str) -> dict:
    return {"model": "m", "temperature": 0, "messages": [{"role": "user", "content": question}]}


QUESTIONS = {
    "password": "How do I reset my password?",
    "account": "How do I close my account?",
    "invoice": "Where can I download my invoice?",
    "refund": "How long does a refund take?",
}


def _url(kind: str, host_port: tuple[str, int] | None = None) -> str:
    base = REDIS_URL if kind == "redis" else POSTGRES_URL
    if host_port is not None:  # the same server through a proxy
        parts = urlsplit(base)
        base = base.replace(f"{parts.hostname}:{parts.port}", f"{host_port[0]}:{host_port[1]}")
    sep = "&" if "?" in base else "?"
    # timeouts well above the defaults: this is about messages, not a slow shared machine
    if kind == "redis":
        return f"{base}{sep}prefix=thrifty-broadcast-{RUN}:&socket_timeout=5"
    return f"{base}{sep}table=thrifty_broadcast_{RUN}&statement_timeout=5&acquire_timeout=5"


def _target(kind: str) -> tuple[str, int]:
    parts = urlsplit(REDIS_URL if kind == "redis" else POSTGRES_URL)
    return parts.hostname or "127.0.0.1", parts.port or (6379 if kind == "redis" else 5432)


def replica(url: str, folder: Path) -> Cache:
    settings = SemanticSettings(embedder=HashingEmbedder(), threshold=0.6, index=str(folder))
    cache = Cache(url, semantic=settings)
    assert cache.semantic is not None and cache.broadcast is not None
    cache.semantic.background = False  # rebuilds inside the call: deterministic
    assert cache.broadcast.subscribed.wait(10)
    return cache


def until(condition: Callable[[], bool], seconds: float = BOUND_S) -> float:
    """Seconds until ``condition`` held (fails past ``seconds``)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.005)
    return time.monotonic() - started


@pytest.fixture(params=["redis", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    request.applymarker(pytest.mark.redis if request.param == "redis" else pytest.mark.postgres)
    return str(request.param)


@pytest.fixture
def pair(kind: str, tmp_path: Path) -> Iterator[tuple[Cache, Cache]]:
    first = replica(_url(kind), tmp_path / "first")
    second = replica(_url(kind), tmp_path / "second")
    try:
        yield first, second
    finally:
        first.clear()
        second.close()
        first.close()


def fill(writer: Cache, reader: Cache) -> dict[str, str]:
    """Store the questions through ``writer``; ``reader`` indexes them (a lookup catches up)."""
    keys = {}
    for name, text in QUESTIONS.items():
        fields = {"tags": ("doc:1",)} if name == "invoice" else {}
        user = {"user_id": "u-purged"} if name == "refund" else {}
        namespace = "tenant-b" if name == "account" else None
        writer.set_request(chat(text), f"answer {name}", namespace=namespace, **fields, **user)
        keys[name] = writer.key(chat(text), namespace=namespace)
    reader.semantic.sync()  # type: ignore[union-attr]
    assert all(key in reader.semantic.index for key in keys.values())  # type: ignore[union-attr]
    return keys


def test_deletes_invalidations_purges_and_clears_reach_the_other_replica(
    pair: tuple[Cache, Cache],
) -> None:
    first, second = pair
    index = second.semantic.index  # type: ignore[union-attr]
    keys = fill(first, second)
    hit = second.lookup_request(chat("how do i reset my password please"))
    assert hit is not None and hit.kind == "semantic_hit"
    took = {
        "delete": (first.delete(keys["password"]), until(lambda: keys["password"] not in index)),
        "tag": (first.invalidate(tag="doc:1"), until(lambda: keys["invoice"] not in index)),
        "user purge": (
            first.invalidate(user_id="u-purged"),
            until(lambda: keys["refund"] not in index),
        ),
        "tenant": (
            first.invalidate(namespace="tenant-b"),
            until(lambda: keys["account"] not in index),
        ),
    }
    assert all(removed for removed, _ in took.values())
    assert len(index) == 0
    assert second.broadcast.received == 4  # type: ignore[union-attr]
    assert first.broadcast.received == 0  # type: ignore[union-attr]  # never its own
    # a clear elsewhere: the other replica's index is rebuilt from the (empty) store
    keys = fill(first, second)
    first.clear()
    until(lambda: len(index) == 0)
    assert second.lookup_request(chat("how do i reset my password please")) is None


def test_a_replica_that_missed_messages_drops_its_local_copies_on_reconnect(
    kind: str, tmp_path: Path
) -> None:
    with TcpProxy(*_target(kind)) as proxy:
        first = replica(_url(kind), tmp_path / "first")
        deaf = replica(_url(kind, ("127.0.0.1", proxy.port)), tmp_path / "deaf")
        try:
            keys = fill(first, deaf)
            index = deaf.semantic.index  # type: ignore[union-attr]
            assert keys["invoice"] in index
            proxy.stop()  # the deaf replica's connections (store and subscription) are cut
            until(lambda: not deaf.broadcast.subscribed.is_set(), 10)  # type: ignore[union-attr]
            assert first.invalidate(tag="doc:1") == 1  # published while it cannot hear
            time.sleep(0.3)
            assert keys["invoice"] in index  # missed: still in its local index
            proxy.start()
            until(lambda: deaf.broadcast.resyncs == 1, 15)  # type: ignore[union-attr]
            until(lambda: keys["invoice"] not in index, 10)

            def served(question: str) -> str | None:
                hit = deaf.lookup_request(chat(question))
                return None if hit is None else hit.entry.key

            # rebuilt from the store (by the resync, or by the next catch-up if the store was
            # still coming back): the live entries are served again, the invalidated one never
            until(lambda: served("how do i reset my password please") == keys["password"], 15)
            assert served("where can i download my invoice please") is None
            assert keys["invoice"] not in index
            # and it hears again
            first.delete(keys["password"])
            until(lambda: keys["password"] not in index)
        finally:
            first.clear()
            deaf.close()
            first.close()


def test_a_failed_publish_is_a_counted_fault_not_an_error(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError:
        pytest.skip("Redis is unreachable")
    cache = replica(_url("redis"), tmp_path / "one")
    try:
        assert cache.broadcast is not None
        cache.broadcast.bus.close()  # its publishing connection is gone...

        def broken(payload: str) -> None:
            raise redis.ConnectionError("refused")

        cache.broadcast.bus.publish = broken  # type: ignore[method-assign]
        errors = cache.stats().errors
        cache.set("k", "v")
        assert cache.delete("k")  # ...the delete still succeeds
        assert cache.stats().errors == errors + 1
    finally:
        cache.close()


def test_a_store_of_one_process_has_no_broadcast(tmp_path: Path) -> None:
    with Cache(f"sqlite:///{tmp_path}/c.db") as cache:
        assert cache.broadcast is None
    with Cache("memory://") as cache:
        assert cache.broadcast is None


@pytest.mark.redis
def test_broadcast_off_in_the_url(tmp_path: Path) -> None:
    with Cache(_url("redis") + "&broadcast=off") as cache:
        assert cache.broadcast is None
    with pytest.raises(ConfigError, match="on or off"):
        Cache(_url("redis") + "&broadcast=maybe")
