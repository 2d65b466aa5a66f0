"""Write-behind: answers already sent, stored in batches by the cache's background thread.

A gateway's miss answers before its store write (``Cache(write_behind=True)``). The answer's
in-process flight stays open until the write is done, so identical requests meanwhile are
coalesced onto it rather than missing again; its cross-process lease is released after the
write for the same reason. A full queue (the store cannot keep up) is refused: the miss then
stores before answering, which bounds both memory and how far the store falls behind.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, NamedTuple

from thrifty.cache.background import BackgroundJobs
from thrifty.cache.coalesce import Leases, SingleFlight
from thrifty.cache.settings import WriteBehindSettings
from thrifty.cache.types import Fault
from thrifty.entry import Entry


class Deferred(NamedTuple):
    """An answer sent and not yet stored."""

    key: str
    value: Any
    options: dict[str, Any]
    """What ``Cache.set`` takes besides key and value (namespace, ttl, request, fields…)."""
    lease: str | None
    """The cross-process lease to release once stored."""


class WriteBehind:
    """The queue of deferred answers of one cache, and the job that stores them.

    Args:
        settings: queue limit and batch size.
        background: the cache's background thread.
        prepare: makes the entry for a deferred answer (``Cache._prepare``).
        commit: stores entries in one transaction where the store can (``Cache._commit``).
        flights, leases: the coalescing state the queued answers hold open.
        fault: reports an answer that could not be stored.
    """

    def __init__(
        self,
        settings: WriteBehindSettings,
        background: BackgroundJobs,
        prepare: Callable[..., Entry | None],
        commit: Callable[[list[Entry]], bool],
        flights: SingleFlight,
        leases: Leases,
        fault: Fault,
    ) -> None:
        self._settings = settings
        self._background = background
        self._prepare = prepare
        self._commit = commit
        self._flights = flights
        self._leases = leases
        self._fault = fault
        self._queue: deque[tuple[Deferred, Future[Any]]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False  # a background job is storing the queue

    def __len__(self) -> int:
        """Answers queued and not yet taken by the writer."""
        return len(self._queue)

    def accepts(self) -> bool:
        """True while the queue has room (else the caller stores before answering)."""
        return len(self._queue) < self._settings.limit

    def put(self, item: Deferred, future: Future[Any]) -> None:
        """Queue an answer; its flight ``future`` is finished once it is stored."""
        with self._lock:
            self._queue.append((item, future))
            if self._scheduled:
                return
            self._scheduled = True
        self._background.submit(self._store)

    def _store(self) -> None:
        """Store the queue, up to ``batch`` answers per transaction (under load the queue
        fills while a batch is written, and the next batch takes it)."""
        size = self._settings.batch
        while True:
            with self._lock:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), size))]
                if not batch:
                    self._scheduled = False
                    return
            try:
                entries = []
                for item, _ in batch:
                    try:
                        entry = self._prepare(item.key, item.value, **item.options)
                        if entry is not None:  # None: a layer refused it (PII)
                            entries.append(entry)
                    except Exception as exc:  # this answer cannot be stored; the rest can
                        self._fault("write behind", exc)
                    # Hand the GIL over between entries: encoding a batch is pure Python, and
                    # the event loop must not wait for all of it to take its next request.
                    time.sleep(0)
                self._commit(entries)
            finally:
                for item, future in batch:
                    if item.lease is not None:
                        self._leases.release(item.lease)
                    self._flights.finish(item.key, future)
