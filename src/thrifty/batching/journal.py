"""Durable progress of a batch run, so ``--resume`` after a crash loses and repeats nothing.

One SQLite file (WAL) with a row per finished ``custom_id``: its output or error line and the
request's cache key. The output files are rebuilt from it, so they never need to be appended safely.

``synchronous=NORMAL``: a committed row survives a killed process (``kill -9``); a power cut may
lose the last rows, as it may lose the cache's last answers (SQLite's default for WAL), and a
commit costs no fsync, so journaling does not slow a job down.

Order of writes for one request: the upstream answers → the answer goes into thrifty's cache
(keyed by the canonical request) → the journal row commits. A crash between the first two loses
one answer that was paid for (unavoidable: it only existed in memory); between the last two the
resumed run finds the answer in the cache and does not pay again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw

from thrifty.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    custom_id TEXT PRIMARY KEY,
    request_key TEXT NOT NULL,
    ok INTEGER NOT NULL,
    line TEXT NOT NULL,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    source TEXT NOT NULL,
    finished_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sent (custom_id TEXT PRIMARY KEY, sent_at REAL NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """A finished request as the journal holds it."""

    custom_id: str
    request_key: str
    ok: bool
    line: dict[str, Any]
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    #: "upstream", "cache" (answered from the cache) or "coalesced" (an identical line's answer).
    source: str = "upstream"


class Journal:
    """The progress file of one batch job.

    Args:
        path: the SQLite file; created with its folder when missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # APSW, as the cache's SQLite store (one SQLite library in the process).
            self._conn = apsw.Connection(str(self.path))
            self._conn.set_busy_timeout(10_000)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute(SCHEMA)
        except (OSError, apsw.Error) as exc:
            raise ConfigError(f"cannot open the batch journal {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    @contextmanager
    def _tx(self) -> Iterator[apsw.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have rolled back by itself
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def mark_sent(self, custom_id: str) -> None:
        """Note that a request is about to reach the upstream (cleared when it finishes)."""
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO sent VALUES (?, ?)", (custom_id, time.time()))

    def take_interrupted(self) -> list[str]:
        """The requests that were sent but never finished (a crash cut them off: the upstream
        may have billed them), forgotten once read."""
        with self._tx() as conn:
            rows: list[Any] = conn.execute(
                "SELECT custom_id FROM sent WHERE custom_id NOT IN (SELECT custom_id FROM results)"
            ).fetchall()
            conn.execute("DELETE FROM sent")
        return [row[0] for row in rows]

    def record(self, rec: JournalRecord) -> None:
        """Commit one finished request (a later record for the same custom_id replaces it)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM sent WHERE custom_id = ?", (rec.custom_id,))
            conn.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.custom_id,
                    rec.request_key,
                    int(rec.ok),
                    json.dumps(rec.line, ensure_ascii=False, separators=(",", ":")),
                    rec.tokens_in,
                    rec.tokens_out,
                    rec.cost_usd,
                    rec.source,
                    time.time(),
                ),
            )

    def finished(self) -> dict[str, tuple[str, bool]]:
        """custom_id -> (request key, succeeded) for every recorded request."""
        with self._lock:
            rows: list[Any] = self._conn.execute(
                "SELECT custom_id, request_key, ok FROM results"
            ).fetchall()
        return {cid: (key, bool(ok)) for cid, key, ok in rows}

    def records(self) -> dict[str, JournalRecord]:
        """Every recorded request by custom_id."""
        with self._lock:
            rows: list[Any] = self._conn.execute(
                "SELECT custom_id, request_key, ok, line, tokens_in, tokens_out, cost_usd, source"
                " FROM results"
            ).fetchall()
        return {
            row[0]: JournalRecord(
                row[0], row[1], bool(row[2]), json.loads(row[3]), row[4], row[5], row[6], row[7]
            )
            for row in rows
        }

    def get_meta(self, name: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def reset(self) -> None:
        """Forget every result (a fresh run over an old journal)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM results")
            conn.execute("DELETE FROM meta")
            conn.execute("DELETE FROM sent")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
