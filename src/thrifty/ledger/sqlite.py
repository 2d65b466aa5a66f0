"""``sqlite:///path.db`` — the default ledger: one file beside the cache's (WAL mode, so the
writer thread's batches never block a reader such as ``thrifty stats`` in another process).

Through APSW, as the SQLite store: the standard library's ``sqlite3`` links another copy of
SQLite whose file locks do not see APSW's."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import apsw

from thrifty.errors import ConfigError
from thrifty.ledger.sql import DEFAULT_TABLE, SqlLedger, schema
from thrifty.store._url import pop_query


def sqlite_path(url: str) -> str:
    """``sqlite:///rel/x.db`` -> ``rel/x.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``."""
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"ledger URL must look like sqlite:///path.db, got {url!r}")
    path = url.removeprefix("sqlite:///")
    if not path or path == ":memory:":
        raise ConfigError(f"{url!r}: use memory:// for an in-process ledger, or a file path")
    return path


class SqliteLedger(SqlLedger):
    """Rows in one SQLite file; one connection shared under a lock (writes are batched, reads
    are rare, so there is nothing to gain from a pool)."""

    def __init__(self, url: str, *, table: str | None = None) -> None:
        url, query = pop_query(url, ("table",))
        super().__init__(table or query.get("table") or DEFAULT_TABLE)
        path = sqlite_path(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = apsw.Connection(path)
        self._conn.setbusytimeout(5000)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL").fetchall()
            for statement in schema(self.table):
                self._conn.execute(statement)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return [tuple(row) for row in self._conn.execute(sql, tuple(params))]

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            self._conn.execute(sql, tuple(params))
            return int(self._conn.changes())

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock, self._conn:  # one transaction: committed, or rolled back on error
            self._conn.executemany(sql, rows)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
