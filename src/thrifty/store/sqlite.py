"""``sqlite:///path.db`` — the embedded default: one file, safe for several processes.

WAL mode lets readers run while one process writes; ``busy_timeout`` makes concurrent writers
wait instead of failing; every write is a ``BEGIN IMMEDIATE`` transaction so two processes never
deadlock upgrading a read lock. A hit is one prepared primary-key SELECT on a per-thread
connection and never writes: eviction is oldest-created first (not LRU) for that reason.

Triggers keep the (entries, bytes) totals in the same transaction as every insert and delete,
so limit checks never count rows.

The driver is APSW, not the standard library's ``sqlite3``: the same SELECT of a hit costs
3.6 µs through APSW against 5.4 µs through ``sqlite3``, which was half of a whole hit
(benchmarks/RESULTS.md). APSW ships its own SQLite; a process must not open the same file
through two SQLite libraries (their POSIX locks do not see each other), so everything here goes
through APSW.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import apsw

from thrifty.entry import Entry, Selector
from thrifty.errors import BackendUnavailableError, ConfigError
from thrifty.store._eviction import over_limits, pick_victims
from thrifty.store.base import Store

log = logging.getLogger("thrifty.store.sqlite")
BUSY_TIMEOUT_MS = 10_000
#: Expired rows are swept on the first write and then every this many writes.
PURGE_EVERY = 256
#: Tries at truncating the WAL after a scrub's VACUUM (a reader may hold it for a moment).
SCRUB_ATTEMPTS = 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    namespace TEXT NOT NULL,
    user_id TEXT,
    tags TEXT,
    model TEXT,
    model_version TEXT,
    created_at REAL NOT NULL,
    expires_at REAL,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    latency_ms REAL NOT NULL DEFAULT 0,
    size INTEGER NOT NULL,
    semantic BLOB
);
CREATE INDEX IF NOT EXISTS entries_namespace ON entries(namespace);
CREATE INDEX IF NOT EXISTS entries_user ON entries(user_id) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_model ON entries(model, model_version);
CREATE INDEX IF NOT EXISTS entries_version ON entries(model_version);
CREATE INDEX IF NOT EXISTS entries_created ON entries(created_at, key);
CREATE INDEX IF NOT EXISTS entries_expires ON entries(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS entry_tags (
    tag TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (tag, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entry_tags_key ON entry_tags(key);
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    entries INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS entries_ins AFTER INSERT ON entries BEGIN
    UPDATE totals SET entries = entries + 1, bytes = bytes + new.size WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS entries_upd AFTER UPDATE OF size ON entries BEGIN
    UPDATE totals SET bytes = bytes + new.size - old.size WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS entries_del AFTER DELETE ON entries BEGIN
    UPDATE totals SET entries = entries - 1, bytes = bytes - old.size WHERE id = 1;
    DELETE FROM entry_tags WHERE key = old.key;
END;
CREATE TABLE IF NOT EXISTS counters (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
"""

_COLUMNS = (
    "value, namespace, user_id, tags, model, model_version, created_at, expires_at, "
    "tokens_in, tokens_out, cost_usd, latency_ms"
)
_GET = f"SELECT {_COLUMNS} FROM entries WHERE key = ?"
_UPSERT = f"""
INSERT INTO entries (key, {_COLUMNS}, size, semantic)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(key) DO UPDATE SET value = excluded.value, namespace = excluded.namespace,
    user_id = excluded.user_id, tags = excluded.tags, model = excluded.model,
    model_version = excluded.model_version, created_at = excluded.created_at,
    expires_at = excluded.expires_at, tokens_in = excluded.tokens_in,
    tokens_out = excluded.tokens_out, cost_usd = excluded.cost_usd,
    latency_ms = excluded.latency_ms, size = excluded.size, semantic = excluded.semantic
"""
_ACQUIRE = """
INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.holder = excluded.holder OR leases.expires_at <= ?
"""
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
#: Selector field -> SQL condition; the tag goes through the exact-match tag table.
_CONDITIONS = {
    "namespace": "namespace = ?",
    "tag": "key IN (SELECT key FROM entry_tags WHERE tag = ?)",
    "model": "model = ?",
    "model_version": "model_version = ?",
    "user_id": "user_id = ?",
}


def path_from_url(url: str) -> str:
    """``sqlite:///rel/x.db`` → ``rel/x.db``; ``sqlite:////abs/x.db`` → ``/abs/x.db``."""
    rest = url.split("://", 1)[1].split("?", 1)[0]
    if not rest.startswith("/") or rest == "/":
        raise ConfigError(f"SQLite URL must look like sqlite:///path.db, got {url!r}")
    path = rest[1:]
    if path in (":memory:", "") or path.startswith("file:"):
        raise ConfigError(f"{url!r}: use memory:// for an in-process cache, or a file path")
    return path


_SEP = "\x1f"  # ASCII unit separator


def _pack_tags(tags: tuple[str, ...]) -> str | None:
    """Tags as one text: joined by the unit separator (a split is ~1 µs cheaper per hit than
    JSON), or a JSON list when a tag is empty, holds the separator or the text starts '['."""
    if not tags:
        return None
    text = _SEP.join(tags)
    if text.startswith("[") or not all(tags) or text.count(_SEP) != len(tags) - 1:
        return json.dumps(list(tags))
    return text


def _tags(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(json.loads(text)) if text[0] == "[" else tuple(text.split(_SEP))


class SQLiteStore(Store):
    """``sqlite:///path.db`` — entries, tags, totals, counters and leases in one file."""

    schemes = ("sqlite",)
    blocking = True
    #: A hit is one primary-key SELECT (WAL readers never wait for writers): cheaper on the
    #: event loop than a thread hop. Expired rows are left to the purge so a read never writes.
    inline_reads = True
    #: Processes on one machine share the file, so leases coalesce across them.
    shared = True

    def __init__(
        self,
        url: str = "sqlite:///.thrifty/cache.db",
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        super().__init__(max_entries=max_entries, max_bytes=max_bytes)
        self.url = url
        self.path = path_from_url(url)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._writes = 0
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._init_schema(self._conn())
        except (OSError, apsw.Error) as exc:
            raise BackendUnavailableError(url, f"cannot open {self.path}: {exc}") from exc
        _forget_connections_in_child(self)

    # ------------------------------------------------------------ plumbing
    def _connect(self) -> apsw.Connection:
        # Autocommit (APSW never opens a transaction by itself); writes use BEGIN IMMEDIATE.
        conn = apsw.Connection(self.path)
        conn.set_busy_timeout(int(self.busy_timeout_ms))
        conn.execute("PRAGMA synchronous = NORMAL")
        self._local.conn = conn
        # The hit path's own cursor: reused, and read to the end (``get``) so the statement is
        # reset and no read transaction stays open between calls.
        self._local.reader = conn.cursor()
        return conn

    def _conn(self) -> apsw.Connection:
        try:
            return self._local.conn
        except AttributeError:
            return self._connect()

    def _init_schema(self, conn: apsw.Connection) -> None:
        # journal_mode is persistent in the file; switching it needs a moment without writers.
        mode: Any = conn.execute("PRAGMA journal_mode").fetchone()
        if mode[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        with self._write(conn) as cur:
            cur.execute(SCHEMA)  # every statement, inside this one transaction

    @contextmanager
    def _write(self, conn: apsw.Connection | None = None) -> Iterator[apsw.Cursor]:
        conn = conn or self._conn()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (e.g. on SQLITE_FULL)
                with contextlib.suppress(apsw.Error):
                    cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()

    # ---------------------------------------------------------------- hit path
    def get(self, key: str) -> Entry | None:
        try:
            reader = self._local.reader
        except AttributeError:
            self._connect()
            reader = self._local.reader
        # ``get`` reads the statement to its end (no read transaction stays open between calls)
        # and hands back the one row of a primary-key lookup as a tuple, or None.
        row = reader.execute(_GET, (key,)).get
        if row is None:
            return None
        # _GET's columns are Entry's fields in order; only the tags need converting.
        entry = Entry(key, *row)
        if entry.expires_at is not None and entry.expires_at <= time.time():
            return None  # swept by the next purge, or replaced by the next set of this key
        try:
            entry.tags = _tags(entry.tags)  # type: ignore[arg-type]
            return entry
        except (ValueError, TypeError) as exc:
            log.warning("dropping unreadable SQLite cache row %s: %s", key[:16], exc)
            self.delete(key)
            return None

    # ------------------------------------------------------------------ writes
    def set(self, entry: Entry) -> None:
        self.set_many((entry,))

    def set_many(self, entries: Sequence[Entry]) -> None:
        """All in one write transaction: one COMMIT (and one wait for the lock) for the lot."""
        with self._write() as cur:
            for entry in entries:
                self._upsert(cur, entry)
            if self.max_entries is not None or self.max_bytes is not None:
                self._enforce_limits(cur)

    def _upsert(self, cur: apsw.Cursor, entry: Entry) -> None:
        row = (
            entry.key, entry.value, entry.namespace, entry.user_id,
            _pack_tags(entry.tags), entry.model,
            entry.model_version, entry.created_at, entry.expires_at, entry.tokens_in,
            entry.tokens_out, entry.cost_usd, entry.latency_ms, entry.size,
            getattr(entry, "semantic", None),
        )  # fmt: skip
        cur.execute(_UPSERT, row)
        cur.execute("DELETE FROM entry_tags WHERE key = ?", (entry.key,))
        if entry.tags:
            cur.executemany(
                "INSERT OR IGNORE INTO entry_tags (tag, key) VALUES (?, ?)",
                [(tag, entry.key) for tag in entry.tags],
            )
        if self._writes % PURGE_EVERY == 0:
            self._purge_expired(cur)
        self._writes += 1

    def _purge_expired(self, cur: apsw.Cursor) -> int:
        cur.execute("DELETE FROM entries WHERE expires_at <= ?", (time.time(),))
        return _changes(cur)

    def _enforce_limits(self, cur: apsw.Cursor) -> None:
        totals: Any = cur.execute("SELECT entries, bytes FROM totals WHERE id = 1").fetchone()
        entries, size = totals
        extra = over_limits(entries, size, self.max_entries, self.max_bytes)
        if extra == (0, 0):
            return
        if self._purge_expired(cur):
            totals = cur.execute("SELECT entries, bytes FROM totals").fetchone()
            entries, size = totals
            extra = over_limits(entries, size, self.max_entries, self.max_bytes)
        if extra == (0, 0):
            return
        oldest = self._conn().execute("SELECT key, size FROM entries ORDER BY created_at, key")
        victims = pick_victims(oldest, *extra)
        oldest.close()
        cur.executemany("DELETE FROM entries WHERE key = ?", [(k,) for k in victims])

    def delete(self, key: str) -> bool:
        with self._write() as cur:
            cur.execute("DELETE FROM entries WHERE key = ?", (key,))
            return _changes(cur) > 0

    def invalidate(self, selector: Selector) -> int:
        clauses, params = [], []
        for name, condition in _CONDITIONS.items():
            value = getattr(selector, name)
            if value is not None:
                clauses.append(condition)
                params.append(value)
        if not clauses:
            return 0
        with self._write() as cur:
            cur.execute(f"DELETE FROM entries WHERE {' AND '.join(clauses)}", params)
            return _changes(cur)

    def clear(self) -> None:
        with self._write() as cur:
            for table in ("entries", "entry_tags", "counters", "leases"):
                cur.execute(f"DELETE FROM {table}")  # fixed table names
            cur.execute("UPDATE totals SET entries = 0, bytes = 0")

    # ------------------------------------------------------------- reporting
    def usage(self, namespace: str | None = None) -> tuple[int, int]:
        sql = f"SELECT count(*), coalesce(sum(size), 0) FROM entries WHERE {_LIVE}"
        params: list[object] = [time.time()]
        if namespace is not None:
            sql += " AND namespace = ?"
            params.append(namespace)
        row: Any = self._conn().execute(sql, params).fetchone()
        return int(row[0]), int(row[1])

    def add_counters(self, namespace: str, counters: Mapping[str, float]) -> None:
        with self._write() as cur:
            cur.executemany(
                "INSERT INTO counters VALUES (?, ?, ?) ON CONFLICT(namespace, name) "
                "DO UPDATE SET value = value + excluded.value",
                [(namespace, name, float(value)) for name, value in counters.items()],
            )

    def read_counters(self, namespace: str | None = None) -> dict[str, float]:
        sql = "SELECT name, sum(value) FROM counters"
        params: tuple[str, ...] = ()
        if namespace is not None:
            sql += " WHERE namespace = ?"
            params = (namespace,)
        rows: list[Any] = self._conn().execute(sql + " GROUP BY name", params).fetchall()
        return {name: float(value) for name, value in rows}

    def iter_entries(
        self, namespace: str | None = None, *, since: float | None = None
    ) -> Iterator[Entry]:
        sql = f"SELECT key, {_COLUMNS}, semantic FROM entries WHERE semantic IS NOT NULL"
        params: list[object] = []
        if namespace is not None:
            sql += " AND namespace = ?"
            params.append(namespace)
        # Keyset pages on (created_at, key): no read transaction stays open between pages.
        sql += " AND (created_at, key) > (?, ?) ORDER BY created_at, key LIMIT 500"
        after: tuple[float, str] = (since if since is not None else float("-inf"), "")
        while True:
            page: list[Any] = self._conn().execute(sql, [*params, *after]).fetchall()
            now = time.time()
            for row in page:
                if row[8] is None or row[8] > now:
                    yield Entry(
                        row[0], row[1], row[2], row[3], _tags(row[4]), row[5], row[6], row[7],
                        row[8], row[9], row[10], row[11], row[12], semantic=row[13],
                    )  # fmt: skip
            if len(page) < 500:
                return
            after = (page[-1][7], page[-1][0])

    def iter_keys(self, namespace: str | None = None) -> Iterator[str]:
        sql = f"SELECT key FROM entries WHERE {_LIVE} AND key > ?"
        params: list[object] = []
        if namespace is not None:
            sql += " AND namespace = ?"
            params.append(namespace)
        sql += " ORDER BY key LIMIT 500"  # keyset pages: no read transaction left open
        after = ""
        while True:
            page: list[Any] = self._conn().execute(sql, [time.time(), after, *params]).fetchall()
            yield from (row[0] for row in page)
            if len(page) < 500:
                return
            after = page[-1][0]

    # ------------------------------------------------------------------ purge
    def scrub(self) -> None:
        """Leave no trace of deleted rows in the file or its WAL.

        A DELETE only unlinks rows: their bytes stay in free pages of the file and in the WAL's
        frames until they happen to be overwritten (a purged user's e-mail was still there after
        a clean shutdown). On a connection of its own, with ``secure_delete`` on and temporary
        data in memory (no temp file holding a copy): ``VACUUM`` rebuilds the file without free
        pages, then ``wal_checkpoint(TRUNCATE)`` copies the result into the file and cuts the WAL
        to zero bytes. Slow on a big file (it rewrites all of it), which a purge can afford.

        Raises:
            BackendUnavailableError: the WAL could not be truncated (a reader held it open).
        """
        conn = apsw.Connection(self.path)
        try:
            conn.set_busy_timeout(int(self.busy_timeout_ms))
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("VACUUM")
            for attempt in range(SCRUB_ATTEMPTS):
                row: Any = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if row[0] == 0:  # not blocked: every frame copied, the WAL truncated
                    return
                time.sleep(0.05 * (attempt + 1))
            raise BackendUnavailableError(self.url, "the WAL stayed in use; it was not truncated")
        finally:
            conn.close()

    # ----------------------------------------------------------------- leases
    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        now = time.time()
        with self._write() as cur:
            cur.execute(_ACQUIRE, (name, holder, now + ttl, now))
            return _changes(cur) > 0

    def release_lease(self, name: str, holder: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    # -------------------------------------------------------------- lifecycle
    def ping(self) -> None:
        self._conn().execute("SELECT 1").fetchone()

    def close(self) -> None:
        # Close only this thread's connection. Another thread may be inside a call on its own
        # connection right now (a write-behind store, a lease release), and closing a
        # connection under a running statement fails. Dropping our references is enough: each
        # connection closes when its last user lets go of it.
        mine = getattr(self._local, "conn", None)
        self._local = threading.local()
        if mine is not None:
            with contextlib.suppress(apsw.Error):  # closing is best effort
                mine.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"


def _changes(cur: apsw.Cursor) -> int:
    """Rows the cursor's last statement changed (triggers' rows not counted)."""
    return int(cur.connection.changes())


def _forget_connections_in_child(store: SQLiteStore) -> None:
    """A forked child must not reuse the parent's SQLite connections; it opens its own."""
    ref = weakref.ref(store)

    def reset() -> None:
        target = ref()
        if target is not None:
            target._local = threading.local()

    os.register_at_fork(after_in_child=reset)
