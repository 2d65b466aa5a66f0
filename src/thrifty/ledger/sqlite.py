"""``sqlite:///path.db`` — the default ledger: one file beside the cache's (WAL mode, so the
writer thread's batches never block a reader such as ``thrifty stats`` in another process)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        with self._lock:
            for statement in schema(self.table):
                self._conn.execute(statement)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, tuple(params)).fetchall())

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).rowcount

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(sql, rows)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
