"""Single-flight: N identical concurrent misses cause one model call.

In one process a table of ``concurrent.futures.Future`` objects serves threads and asyncio
tasks alike (tasks await them through ``asyncio.wrap_future``). Across processes a lease in the
shared store (Redis, PostgreSQL) elects one caller; the others poll the store for its answer and
take over if the lease expires, so a crashed holder blocks the rest for at most ``lease_ttl``.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any


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

    def finish(self, key: str, future: Future[Any]) -> None:
        with self._lock:
            if self._calls.get(key) is future:
                del self._calls[key]

    def __len__(self) -> int:
        return len(self._calls)


def poll_delays(first: float = 0.005, factor: float = 1.5, cap: float = 0.1):  # type: ignore[no-untyped-def]
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
