"""Shared fixtures: every store/cache test runs unchanged against all four backends.

Redis and PostgreSQL are the real servers of this machine; when one is unreachable the tests
that need it FAIL with a message saying how to start it (they are never skipped).
Override the servers with THRIFTY_TEST_REDIS / THRIFTY_TEST_POSTGRES.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from thrifty.cache import Cache
from thrifty.entry import Entry
from thrifty.errors import BackendUnavailableError
from thrifty.store import Store, open_store
from thrifty.testing.fake_openai import FakeOpenAI

# Property tests check what is computed, never how fast: on a shared, busy machine one example
# can take 100x its usual time, and hypothesis's 200 ms deadline then fails a correct test.
settings.register_profile("thrifty", deadline=None)
settings.load_profile("thrifty")

REDIS_URL = os.environ.get("THRIFTY_TEST_REDIS", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("THRIFTY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
HOW_TO_START = {
    "redis": f"Redis at {REDIS_URL} is unreachable; start it with `redis-server --daemonize yes`"
    " (or set THRIFTY_TEST_REDIS)",
    "postgres": f"PostgreSQL at {POSTGRES_URL} is unreachable; start it with "
    "`pg_ctlcluster 15 main start` and create the `test` database (or set THRIFTY_TEST_POSTGRES)",
}
ALL_BACKENDS = ("memory", "sqlite", "redis", "postgres")
SHARED_BACKENDS = ("sqlite", "redis", "postgres")


@dataclass
class Backend:
    """One backend under test: a URL other processes can open, and its cleanup."""

    kind: str
    url: str
    opened: list[Store] = field(default_factory=list)

    def open(self, **options: Any) -> Store:
        try:
            store = open_store(self.url, **options)
        except BackendUnavailableError as exc:
            pytest.fail(f"{HOW_TO_START.get(self.kind, self.kind)}: {exc}")
        self.opened.append(store)
        return store

    def cache(self, **options: Any) -> Cache:
        limits = {k: options.pop(k) for k in ("max_entries", "max_bytes") if k in options}
        return Cache(self.open(**limits), **options)

    def corrupt(self, store: Store, key: str) -> None:
        """Overwrite the stored record under ``key`` with garbage, behind the cache's back."""
        garbage = b"\x00\xffnot a thrifty payload"
        if self.kind == "memory":
            store._data[key] = Entry(key, garbage)  # type: ignore[attr-defined]
        elif self.kind == "sqlite":
            conn = store._conn()  # type: ignore[attr-defined]
            conn.execute("UPDATE entries SET value = ? WHERE key = ?", (garbage, key))
        elif self.kind == "redis":
            store._client.set(store._entry_prefix + key, garbage)  # type: ignore[attr-defined]
        else:
            with store._pool.connection() as conn:  # type: ignore[attr-defined]
                conn.execute(f"UPDATE {store.table} SET value = %s WHERE key = %s", (garbage, key))  # type: ignore[attr-defined]

    def cleanup(self) -> None:
        for store in self.opened:
            try:
                if self.kind == "redis":
                    store.clear()
                elif self.kind == "postgres":
                    store.drop_tables()  # type: ignore[attr-defined]
            finally:
                store.close()


def _backend_url(kind: str, tmp_path: Path) -> str:
    tag = uuid.uuid4().hex[:10]
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/cache.db"
    if kind == "redis":
        sep = "&" if "?" in REDIS_URL else "?"
        return f"{REDIS_URL}{sep}prefix=thrifty-test-{tag}:"
    sep = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{sep}table=thrifty_test_{tag}"


def _make_backend(kind: str, tmp_path: Path) -> Iterator[Backend]:
    backend = Backend(kind, _backend_url(kind, tmp_path))
    yield backend
    backend.cleanup()


@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each of the four backends, with a private prefix/table/file, cleaned up afterwards."""
    yield from _make_backend(request.param, tmp_path)


@pytest.fixture(params=SHARED_BACKENDS)
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The backends several processes can share."""
    yield from _make_backend(request.param, tmp_path)


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()


@pytest.fixture
def cache(backend: Backend) -> Cache:
    return backend.cache()


@pytest.fixture
def make_entry() -> Callable[..., Entry]:
    """Entries with distinct, increasing creation times (eviction order is by creation)."""
    counter = iter(range(1_000_000))

    def make(key: str, value: bytes = b"t1[1]", **fields: Any) -> Entry:
        fields.setdefault("created_at", 1_700_000_000.0 + next(counter))
        return Entry(key, value, **fields)

    return make


# ------------------------------------------------------------------ gateway fixtures
@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """A FAKE OpenAI-compatible upstream on loopback (modules with another upstream override it)."""
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture
def served(fake: FakeOpenAI) -> Iterator[str]:
    """The gateway in front of ``fake`` with the default test config; yields its base URL."""
    from _gateway import fake_config, gateway

    with gateway(fake_config(fake.base_url)) as (url, _):
        yield url
