"""Coalescing: N identical concurrent misses cause one model call.

In one process a table of ``concurrent.futures.Future`` objects serves threads and asyncio
tasks alike (tasks await them through ``asyncio.wrap_future``). Across processes a lease in the
shared store (Redis, PostgreSQL) elects one caller; the others poll the store for its answer and
take over if the lease expires, so a crashed holder blocks the rest for at most ``lease_ttl``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from thrifty.cache.settings import CoalesceSettings
from thrifty.cache.types import Fault
from thrifty.store import Store


class LeaderGone(Exception):
    """Given to waiters when their leader was cancelled or interrupted: one of them takes over.

    A waiter must never inherit a leader's ``CancelledError``: one client that disconnects would
    otherwise cancel every identical request waiting on it.
    """


class SingleFlight:
    """The in-process table of in-flight keys."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, Future[Any]] = {}

    def join(self, key: str) -> tuple[Future[Any], bool]:
        """The future for ``key`` and whether the caller is its leader (must compute it)."""
        with self._lock:
            future = self._calls.get(key)
            if future is not None:
                return future, False
            future = Future()
            self._calls[key] = future
            return future, True

    def settled(self, key: str) -> Any:
        """The value of ``key``'s flight when its leader already has it (the answer was sent
        and is still being stored, write-behind), else None. Never waits."""
        future = self._calls.get(key)
        if future is None or not future.done() or future.cancelled():
            return None
        return None if future.exception() is not None else future.result()

    def finish(self, key: str, future: Future[Any]) -> None:
        """Close ``key``'s flight (if ``future`` is still its flight): the next caller leads."""
        with self._lock:
            if self._calls.get(key) is future:
                del self._calls[key]

    def __len__(self) -> int:
        return len(self._calls)


class Leases:
    """Cross-process leases in the store: one process computes a key, the others wait.

    Args:
        store: where the leases are kept.
        settings: lease lifetime, holder name and whether leases are taken at all.
        fault: reports a store failure (the lease is then assumed: fail-open).
    """

    def __init__(self, store: Store, settings: CoalesceSettings, fault: Fault) -> None:
        self._store = store
        self._fault = fault
        self.shared = store.shared and settings.shared_leases is not False
        """False when no other process can wait on this one: no lease is then taken."""
        self.ttl = settings.lease_ttl
        self.holder = settings.holder or uuid.uuid4().hex

    def take(self, name: str) -> bool:
        """Whether this cache now holds lease ``name`` (True when the store failed)."""
        try:
            return self._store.acquire_lease(name, self.holder, self.ttl)
        except Exception as exc:
            self._fault("acquire lease", exc)
            return True  # fail-open: compute ourselves

    def release(self, name: str) -> None:
        """Give lease ``name`` back (a failure only delays the others by the lease's TTL)."""
        try:
            self._store.release_lease(name, self.holder)
        except Exception as exc:
            self._fault("release lease", exc)


def poll_delays(first: float = 0.005, factor: float = 1.5, cap: float = 0.1) -> Iterator[float]:
    """Backoff between looks at the shared store while another process computes."""
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, cap)


def lone_process_leases(url: str | None) -> bool | None:
    """``shared_leases`` for the only process using a cache at ``url``: no coalescing leases on
    SQLite (each costs write transactions on the miss path, and nobody else would wait), the
    default elsewhere (Redis and PostgreSQL keep them). ``None`` is the default SQLite URL."""
    return False if url is None or url.startswith("sqlite") else None
