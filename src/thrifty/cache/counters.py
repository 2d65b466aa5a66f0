"""The cache's counters: hits, misses and savings buffered in memory, flushed to the store.

Counting must cost the hit path next to nothing, so nothing is written per lookup: exact hits
go to a lock-free per-thread tally (``tally.py``), other amounts to a small locked buffer, and
both reach the store (summed across replicas) at most once a second, on a background thread
when the caller is an event loop and the write would block it. Backend faults are counted
here too (``errors``) and logged: the cache fails open, and this is where that shows.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict

from thrifty.cache.background import BackgroundJobs
from thrifty.cache.tally import HIT_COUNTERS, HitTally
from thrifty.store import Store

log = logging.getLogger("thrifty.cache")

#: Seconds between flushes of the buffered counters to the store.
COUNTER_FLUSH_SECONDS = 1.0


def _buckets() -> defaultdict[str, defaultdict[str, float]]:
    return defaultdict(lambda: defaultdict(float))


class Counters:
    """Buffered per-namespace counters of one cache, and its count of backend faults.

    Args:
        store: where the counters are summed.
        background: runs a flush off the event loop.
    """

    def __init__(self, store: Store, background: BackgroundJobs) -> None:
        self._store = store
        self._background = background
        self.tally = HitTally()
        """Exact hits, added to by the exact layer without a lock."""
        self._pending = _buckets()
        self._lock = threading.Lock()
        self.last_flush = time.monotonic()
        self.errors = 0

    def fault(self, operation: str, exc: BaseException) -> None:
        """Count and log a backend failure the cache survived (fail-open)."""
        self.errors += 1
        log.warning("thrifty cache backend failed during %s: %s", operation, exc)

    def count(self, namespace: str, **amounts: float) -> None:
        """Add to ``namespace``'s counters (misses, semantic hits and what they saved)."""
        with self._lock:
            bucket = self._pending[namespace]
            for name, value in amounts.items():
                bucket[name] += value
        self.flush_if_due()

    def flush_if_due(self) -> None:
        """Flush when the last flush is older than COUNTER_FLUSH_SECONDS."""
        if time.monotonic() - self.last_flush > COUNTER_FLUSH_SECONDS:
            self._flush_off_loop()

    def _flush_off_loop(self) -> None:
        """Flush now, or on the background thread when on an event loop and the flush is a
        blocking write."""
        if not self._store.blocking:
            self.flush()
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self.last_flush = time.monotonic()  # one flush in flight at a time
        self._background.submit(self.flush)

    def flush(self) -> None:
        """Write the buffered counters to the store; on failure keep them for the next flush."""
        with self._lock:
            pending, self._pending = self._pending, _buckets()
            self.last_flush = time.monotonic()
        for namespace, sums in self.tally.take().items():
            bucket = pending[namespace]
            for name, value in zip(HIT_COUNTERS, sums, strict=True):
                bucket[name] += value
        for namespace, counters in pending.items():
            try:
                self._store.add_counters(namespace, counters)
            except Exception as exc:  # fail-open: keep them for the next flush
                self.fault("flush counters", exc)
                with self._lock:
                    for name, value in counters.items():
                        self._pending[namespace][name] += value

    def clear(self) -> None:
        """Forget what is buffered (the store's counters are being cleared)."""
        with self._lock:
            self._pending.clear()
        self.tally.clear()
