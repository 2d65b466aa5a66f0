"""Rows written off the hot path: queued by the request, stored in batches by one thread.

A request only appends its row to a deque (no I/O, no lock contention with the store); the
writer thread wakes every ``interval`` seconds or when a batch is full, writes what is queued
in one transaction, and now and then drops rows older than the retention. A queue that grows
past ``max_queue`` (the store is down or too slow) drops new rows and counts them, so the
ledger can never take memory or latency from the gateway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from thrifty.ledger.types import Ledger, LedgerRow

log = logging.getLogger("thrifty.ledger")

#: Seconds between retention sweeps.
RETENTION_SWEEP_S = 3600.0


class LedgerWriter:
    """The queue in front of a :class:`~thrifty.ledger.types.Ledger`.

    Args:
        ledger: where rows are written (it is closed with the writer).
        retention_days: rows older than this are removed (None keeps them all).
        interval: seconds between writes.
        batch: rows that wake the thread before the interval ends.
        max_queue: rows queued at most; later ones are dropped (and counted).
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        retention_days: float | None = None,
        interval: float = 0.25,
        batch: int = 512,
        max_queue: int = 100_000,
    ) -> None:
        self.ledger = ledger
        self.retention_days = retention_days
        self.interval = interval
        self.batch = batch
        self.max_queue = max_queue
        self.dropped = 0
        self.failed = 0
        self._queue: deque[LedgerRow] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._last_sweep = 0.0
        self._thread = threading.Thread(target=self._loop, name="thrifty-ledger", daemon=True)
        self._thread.start()

    def record(self, row: LedgerRow) -> None:
        """Queue one row (never blocks, never raises)."""
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return
        queue.append(row)
        if len(queue) >= self.batch:
            self._wake.set()

    def flush(self) -> None:
        """Write every queued row now (tests, shutdown, a reader that must see all rows)."""
        with self._write_lock:
            while self._queue:
                self._write_some()

    def mark_wrong_hit(self, request_id: str) -> bool:
        """Flag a served answer as wrong (feedback), once its row is written."""
        self.flush()
        return self.ledger.mark_wrong_hit(request_id)

    def purge_user(self, user: str) -> int:
        """Remove an end user's rows, those still queued included (the purge path)."""
        self.flush()
        return self.ledger.purge_user(user)

    def delete_tenant(self, tenant: str) -> int:
        """Remove a tenant's rows, those still queued included."""
        self.flush()
        return self.ledger.delete_tenant(tenant)

    def _write_some(self) -> None:
        queue, rows = self._queue, list[LedgerRow]()
        while queue and len(rows) < self.batch:
            rows.append(queue.popleft())
        try:
            self.ledger.write(rows)
        except Exception:  # a broken ledger must not break the gateway: count and go on
            self.failed += len(rows)
            log.exception("writing %d ledger rows failed", len(rows))

    def _sweep(self) -> None:
        now = time.time()
        if self.retention_days is None or now - self._last_sweep < RETENTION_SWEEP_S:
            return
        self._last_sweep = now
        try:
            self.ledger.purge_before(now - self.retention_days * 86400.0)
        except Exception:
            log.exception("the ledger's retention sweep failed")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()
            self._sweep()

    def close(self) -> None:
        """Write what is queued, stop the thread, close the ledger."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()
        self.ledger.close()
