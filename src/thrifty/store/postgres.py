"""``postgresql://user@host/db`` — durable entries shared by every replica.

One table of entries (tags as ``text[]`` with a GIN index, so tag invalidation is an exact
``tags @> ARRAY[tag]``), one of leases (taken by ``INSERT … ON CONFLICT DO UPDATE WHERE`` the
current lease expired or is ours) and one of counters (upserted sums). Names come from ``table``
(``?table=`` in the URL), so tests and tenants can use isolated tables. A hit is one indexed
SELECT that filters out expired rows; expired rows are swept by later writes. Eviction is
oldest-created first, so a hit never writes.

Every wait is bounded, so a dead server answers "failed" within a fraction of a second: a call
waits at most ``acquire_timeout`` for a pooled connection (the pool connects in the background;
libpq's own ``connect_timeout`` is at least 2 s, so no caller waits on it), and each statement
runs under the server's ``statement_timeout`` (bulk work: invalidation, clearing, counting,
sweeping and listing, under the longer ``bulk_timeout``). The pool gives up a failed reconnect
after a second and tries afresh on the next demand, so it reconnects within seconds of the
server's return. All four are keyword arguments or URL parameters (``?acquire_timeout=0.5``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from thrifty.entry import Entry, Selector
from thrifty.errors import BackendUnavailableError, ConfigError
from thrifty.redact import redact_url
from thrifty.store._eviction import over_limits, pick_victims
from thrifty.store._url import BROADCAST, pop_query, seconds, switch
from thrifty.store.base import Store
from thrifty.store.bus import Bus, PostgresBus

#: Timeouts in seconds: keyword argument or URL parameter -> default.
TIMEOUTS = {
    "connect_timeout": 2.0,  # libpq's minimum; only the opening connection waits on it
    "acquire_timeout": 0.5,  # a call waiting for a pooled connection
    "statement_timeout": 0.5,  # one statement of a get, set, delete or lease
    "bulk_timeout": 60.0,  # invalidate, clear, usage, sweeps, limits, listing
}
#: How long the pool retries a failed reconnect before it gives up and waits for demand.
RECONNECT_TIMEOUT_S = 1.0
#: The client gives up this long after the server's own statement timeout: the server answers
#: a timed-out statement itself, so only a server that cannot answer at all reaches this.
WAIT_MARGIN_S = 0.25
DEFAULT_TABLE = "thrifty_entries"
POOL_MAX = 8
#: Expired rows are swept on the first write and then every this many writes.
PURGE_EVERY = 256
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}(\.[A-Za-z_][A-Za-z0-9_]{0,40})?$")

_COLUMNS = (
    "value, namespace, user_id, tags, model, model_version, created_at, expires_at, "
    "tokens_in, tokens_out, cost_usd, latency_ms"
)
#: Selector field -> SQL condition.
_CONDITIONS = {
    "namespace": "namespace = %s",
    "tag": "tags @> ARRAY[%s]::text[]",
    "model": "model = %s",
    "model_version": "model_version = %s",
    "user_id": "user_id = %s",
}


def split_url(url: str, table: str | None) -> tuple[str, str, dict[str, str]]:
    """(conninfo for psycopg, table name, our other URL options): ``?table=`` and the
    :data:`TIMEOUTS` are ours, the rest goes to libpq."""
    rest, ours = pop_query(url, {"table", BROADCAST, *TIMEOUTS})
    chosen = table or ours.pop("table", DEFAULT_TABLE)
    if not _NAME.match(chosen):
        raise ConfigError(f"invalid PostgreSQL table name {chosen!r} (use [schema.]name)")
    parts = urlsplit(rest)
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    return urlunsplit(parts._replace(scheme=scheme)), chosen, ours


def _schema(t: str) -> list[str]:
    base = t.replace(".", "_")
    return [
        f"""CREATE TABLE IF NOT EXISTS {t} (
            key text PRIMARY KEY, value bytea NOT NULL, namespace text NOT NULL,
            user_id text, tags text[] NOT NULL DEFAULT '{{}}', model text, model_version text,
            created_at double precision NOT NULL, expires_at double precision,
            tokens_in bigint NOT NULL DEFAULT 0, tokens_out bigint NOT NULL DEFAULT 0,
            cost_usd double precision NOT NULL DEFAULT 0,
            latency_ms double precision NOT NULL DEFAULT 0, size bigint NOT NULL,
            semantic bytea)""",
        f"CREATE INDEX IF NOT EXISTS {base}_ns ON {t} (namespace)",
        f"CREATE INDEX IF NOT EXISTS {base}_user ON {t} (user_id)",
        f"CREATE INDEX IF NOT EXISTS {base}_model ON {t} (model, model_version)",
        f"CREATE INDEX IF NOT EXISTS {base}_version ON {t} (model_version)",
        f"CREATE INDEX IF NOT EXISTS {base}_created ON {t} (created_at, key)",
        f"CREATE INDEX IF NOT EXISTS {base}_expires ON {t} (expires_at)",
        f"CREATE INDEX IF NOT EXISTS {base}_tags ON {t} USING GIN (tags)",
        f"""CREATE TABLE IF NOT EXISTS {t}_leases (
            name text PRIMARY KEY, holder text NOT NULL, expires_at double precision NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {t}_counters (
            namespace text NOT NULL, name text NOT NULL, value double precision NOT NULL,
            PRIMARY KEY (namespace, name))""",
    ]


class PostgresStore(Store):
    """``postgresql://`` — entries, leases and counters in three tables."""

    schemes = ("postgresql", "postgres")
    blocking = True
    shared = True

    def __init__(
        self,
        url: str = "postgresql://127.0.0.1/postgres",
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        table: str | None = None,
        pool_size: int = POOL_MAX,
        connect_timeout: float | None = None,
        acquire_timeout: float | None = None,
        statement_timeout: float | None = None,
        bulk_timeout: float | None = None,
    ) -> None:
        super().__init__(max_entries=max_entries, max_bytes=max_bytes)
        try:
            import psycopg
            from psycopg.conninfo import conninfo_to_dict
            from psycopg_pool import ConnectionPool, PoolTimeout

            from thrifty.store import _pg_connection
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise BackendUnavailableError(
                url, "psycopg 3 is not installed; pip install 'thrifty[postgres]'"
            ) from exc
        self.url = url
        self.outage_errors = (psycopg.OperationalError, psycopg.InterfaceError, OSError)
        conninfo, self.table, query = split_url(url, table)
        self._conninfo = conninfo
        self._broadcast = switch(BROADCAST, query)
        given = {
            "connect_timeout": connect_timeout,
            "acquire_timeout": acquire_timeout,
            "statement_timeout": statement_timeout,
            "bulk_timeout": bulk_timeout,
        }
        self.timeouts = {k: seconds(k, given[k], query, v) for k, v in TIMEOUTS.items()}
        connect_s = max(2, round(self.timeouts["connect_timeout"]))  # libpq: whole seconds, >= 2
        statement_ms = max(1, round(self.timeouts["statement_timeout"] * 1000))
        self._set_statement_timeout = f"SET statement_timeout = {statement_ms}"
        self._bulk_timeout = (
            f"SET LOCAL statement_timeout = {max(1, round(self.timeouts['bulk_timeout'] * 1000))}"
        )
        # Client-side deadlines for a server that cannot answer (see _pg_connection).
        self._hot_wait = self.timeouts["statement_timeout"] + WAIT_MARGIN_S
        self._bulk_wait = self.timeouts["bulk_timeout"] + WAIT_MARGIN_S
        t = self.table
        self._get = (
            f"SELECT {_COLUMNS} FROM {t} WHERE key = %s AND (expires_at IS NULL OR expires_at > %s)"
        )
        self._upsert = f"""
            INSERT INTO {t} (key, {_COLUMNS}, size, semantic)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                namespace = excluded.namespace, user_id = excluded.user_id,
                tags = excluded.tags, model = excluded.model,
                model_version = excluded.model_version, created_at = excluded.created_at,
                expires_at = excluded.expires_at, tokens_in = excluded.tokens_in,
                tokens_out = excluded.tokens_out, cost_usd = excluded.cost_usd,
                latency_ms = excluded.latency_ms, size = excluded.size,
                semantic = excluded.semantic"""
        self._writes = 0
        # This process's bound on rows written since the last exact count: limits are checked
        # exactly only when the bound could be over them (other writers are caught every
        # PURGE_EVERY writes), so a set does not count the table each time.
        self._room: tuple[int, int] | None = None
        self._room_lock = threading.Lock()
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": connect_s}
        if "tcp_user_timeout" not in conninfo_to_dict(conninfo):
            # A server that vanished (no RST: a dead host, a dropped route) would leave a sent
            # statement waiting for TCP's retransmissions (minutes): give up after the
            # statement's own timeout and a second.
            kwargs["tcp_user_timeout"] = statement_ms + 1000
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            kwargs=kwargs,
            connection_class=(
                _pg_connection.BoundedConnection if _pg_connection.SUPPORTED else psycopg.Connection
            ),
            configure=self._configure,
            reset=self._reset,
            timeout=self.timeouts["acquire_timeout"],
            reconnect_timeout=RECONNECT_TIMEOUT_S,
            open=False,
            name=f"thrifty-{t}",
        )
        try:
            # One direct connection first: a refused or wrong server fails at once with libpq's
            # own message, where the pool would retry until its timeout.
            psycopg.connect(conninfo, **kwargs).close()
            self._pool.open(wait=True, timeout=connect_s + 1)
            self._create_tables()
        except (PoolTimeout, psycopg.Error) as exc:
            self._pool.close()
            raise BackendUnavailableError(url, f"{type(exc).__name__}: {exc}") from exc

    def _configure(self, conn: Any) -> None:
        """Run on every new pooled connection: bound each statement (hot-path work)."""
        conn.wait_timeout = self._hot_wait
        conn.execute(self._set_statement_timeout)

    def _reset(self, conn: Any) -> None:
        """Run when a connection returns to the pool: back to the hot path's deadline."""
        conn.wait_timeout = self._hot_wait

    def _go_bulk(self, conn: Any) -> None:
        """Give the rest of this transaction the bulk timeouts (the pool's reset undoes them):
        its statements scan or delete many rows, which the hot path's timeout would cut."""
        conn.wait_timeout = self._bulk_wait
        conn.execute(self._bulk_timeout)

    @contextmanager
    def _bulk(self) -> Iterator[Any]:
        """A pooled connection in a transaction with the bulk timeouts."""
        with self._pool.connection() as conn, conn.transaction():
            self._go_bulk(conn)
            yield conn

    def _create_tables(self) -> None:
        with self._bulk() as conn:
            # Concurrent CREATE … IF NOT EXISTS can still collide in the catalog: serialize.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
            for statement in _schema(self.table):
                conn.execute(statement)

    # ---------------------------------------------------------------- hit path
    def get(self, key: str) -> Entry | None:
        with self._pool.connection() as conn:
            row = conn.execute(self._get, (key, time.time())).fetchone()
        if row is None:
            return None
        return Entry(
            key, bytes(row[0]), row[1], row[2], tuple(row[3]), row[4], row[5], row[6], row[7],
            row[8], row[9], row[10], row[11],
        )  # fmt: skip

    # ------------------------------------------------------------------ writes
    def set(self, entry: Entry) -> None:
        row = (
            entry.key, entry.value, entry.namespace, entry.user_id, list(entry.tags),
            entry.model, entry.model_version, entry.created_at, entry.expires_at,
            entry.tokens_in, entry.tokens_out, entry.cost_usd, entry.latency_ms, entry.size,
            getattr(entry, "semantic", None),
        )  # fmt: skip
        limited = self.max_entries is not None or self.max_bytes is not None
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(self._upsert, row)
            sweep = self._writes % PURGE_EVERY == 0
            self._writes += 1
            enforce = limited and (sweep or self._might_overflow(entry.size))
            if sweep or enforce:  # sweeping and counting are bulk work: the longer timeout
                self._go_bulk(conn)
            if sweep:
                conn.execute(f"DELETE FROM {self.table} WHERE expires_at <= %s", (time.time(),))
            if enforce:
                self._enforce_limits(conn)

    def _might_overflow(self, size: int) -> bool:
        with self._room_lock:
            if self._room is None:
                return True
            entries, nbytes = self._room[0] - 1, self._room[1] - size
            self._room = (entries, nbytes)
            return entries < 0 or nbytes < 0

    def _enforce_limits(self, conn: Any) -> None:
        t = self.table
        # One writer at a time evicts, so two processes do not both drop the oldest rows.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (t + ":evict",))
        entries, size = conn.execute(f"SELECT count(*), coalesce(sum(size), 0) FROM {t}").fetchone()
        extra = over_limits(entries, int(size), self.max_entries, self.max_bytes)
        if extra != (0, 0):
            conn.execute(f"DELETE FROM {t} WHERE expires_at <= %s", (time.time(),))
            entries, size = conn.execute(
                f"SELECT count(*), coalesce(sum(size), 0) FROM {t}"
            ).fetchone()
            extra = over_limits(entries, int(size), self.max_entries, self.max_bytes)
        if extra != (0, 0):
            limit = extra[0] + 64
            while True:
                rows = conn.execute(
                    f"SELECT key, size FROM {t} ORDER BY created_at, key LIMIT %s", (limit,)
                ).fetchall()
                victims = pick_victims(rows, *extra)
                if len(victims) < len(rows) or len(rows) < limit:
                    break
                limit *= 4
            conn.execute(f"DELETE FROM {t} WHERE key = ANY(%s)", (victims,))
            dropped = sum(size for key, size in rows[: len(victims)])
            entries, size = entries - len(victims), int(size) - dropped
        with self._room_lock:
            self._room = (
                (self.max_entries - entries) if self.max_entries is not None else 1 << 62,
                (self.max_bytes - int(size)) if self.max_bytes is not None else 1 << 62,
            )

    def delete(self, key: str) -> bool:
        with self._pool.connection() as conn:
            return conn.execute(f"DELETE FROM {self.table} WHERE key = %s", (key,)).rowcount > 0

    def invalidate(self, selector: Selector) -> int:
        clauses, params = [], []
        for name, condition in _CONDITIONS.items():
            value = getattr(selector, name)
            if value is not None:
                clauses.append(condition)
                params.append(value)
        if not clauses:
            return 0
        with self._bulk() as conn:
            sql = f"DELETE FROM {self.table} WHERE {' AND '.join(clauses)}"
            return conn.execute(sql, params).rowcount

    def clear(self) -> None:
        with self._bulk() as conn:
            for table in (self.table, f"{self.table}_leases", f"{self.table}_counters"):
                conn.execute(f"DELETE FROM {table}")
        with self._room_lock:
            self._room = None

    def drop_tables(self) -> None:
        """Remove the tables themselves (used by tests that made a table of their own)."""
        with self._bulk() as conn:
            for table in (self.table, f"{self.table}_leases", f"{self.table}_counters"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")

    # ------------------------------------------------------------- reporting
    def usage(self, namespace: str | None = None) -> tuple[int, int]:
        sql = (
            f"SELECT count(*), coalesce(sum(size), 0) FROM {self.table} "
            "WHERE (expires_at IS NULL OR expires_at > %s)"
        )
        params: list[Any] = [time.time()]
        if namespace is not None:
            sql += " AND namespace = %s"
            params.append(namespace)
        with self._bulk() as conn:
            entries, size = conn.execute(sql, params).fetchone()
        return int(entries), int(size)

    def add_counters(self, namespace: str, counters: Mapping[str, float]) -> None:
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.table}_counters VALUES (%s, %s, %s) "
                "ON CONFLICT (namespace, name) DO UPDATE SET "
                f"value = {self.table}_counters.value + excluded.value",
                [(namespace, name, float(value)) for name, value in counters.items()],
            )

    def read_counters(self, namespace: str | None = None) -> dict[str, float]:
        sql = f"SELECT name, sum(value) FROM {self.table}_counters"
        params: tuple[str, ...] = ()
        if namespace is not None:
            sql += " WHERE namespace = %s"
            params = (namespace,)
        with self._pool.connection() as conn:
            rows = conn.execute(sql + " GROUP BY name", params).fetchall()
        return {name: float(value) for name, value in rows}

    def iter_entries(
        self, namespace: str | None = None, *, since: float | None = None
    ) -> Iterator[Entry]:
        sql = (
            f"SELECT key, {_COLUMNS}, semantic FROM {self.table} WHERE semantic IS NOT NULL "
            "AND (expires_at IS NULL OR expires_at > %s)"
        )
        params: list[Any] = []
        if namespace is not None:
            sql += " AND namespace = %s"
            params.append(namespace)
        # Keyset pages on (created_at, key): no transaction stays open between pages.
        sql += " AND (created_at, key) > (%s, %s) ORDER BY created_at, key LIMIT 500"
        after: tuple[float, str] = (since if since is not None else float("-inf"), "")
        while True:
            with self._bulk() as conn:
                page = conn.execute(sql, [time.time(), *params, *after]).fetchall()
            for row in page:
                yield Entry(
                    row[0], bytes(row[1]), row[2], row[3], tuple(row[4]), row[5], row[6],
                    row[7], row[8], row[9], row[10], row[11], row[12], semantic=bytes(row[13]),
                )  # fmt: skip
            if len(page) < 500:
                return
            after = (page[-1][7], page[-1][0])

    def iter_keys(self, namespace: str | None = None) -> Iterator[str]:
        sql = (
            f"SELECT key FROM {self.table} WHERE (expires_at IS NULL OR expires_at > %s) "
            "AND key > %s"
        )
        params: list[Any] = []
        if namespace is not None:
            sql += " AND namespace = %s"
            params.append(namespace)
        sql += " ORDER BY key LIMIT 500"  # keyset pages: no transaction stays open
        after = ""
        while True:
            with self._bulk() as conn:
                page = conn.execute(sql, [time.time(), after, *params]).fetchall()
            yield from (row[0] for row in page)
            if len(page) < 500:
                return
            after = page[-1][0]

    def scrub(self) -> None:
        """``VACUUM`` the entries table (and its TOAST table): a DELETE leaves the dead row
        versions on disk until a vacuum prunes them; a purge cannot wait for autovacuum.
        (PostgreSQL's WAL segments are recycled by the server on its own schedule.)"""
        bulk_ms = max(1, round(self.timeouts["bulk_timeout"] * 1000))
        with self._pool.connection() as conn:
            bounded: Any = conn  # a BoundedConnection (see _pg_connection)
            bounded.wait_timeout = self._bulk_wait
            # VACUUM cannot run in a transaction (so no SET LOCAL): the session's timeout is
            # raised for it, then put back before the connection returns to the pool.
            conn.execute(f"SET statement_timeout = {bulk_ms}")
            try:
                conn.execute(f"VACUUM {self.table}")
            finally:
                conn.execute(self._set_statement_timeout)

    # ----------------------------------------------------------------- leases
    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        now = time.time()
        t = f"{self.table}_leases"
        with self._pool.connection() as conn:
            cur = conn.execute(
                f"INSERT INTO {t} (name, holder, expires_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                f"expires_at = excluded.expires_at WHERE {t}.holder = excluded.holder "
                f"OR {t}.expires_at <= %s",
                (name, holder, now + ttl, now),
            )
            return cur.rowcount > 0

    def release_lease(self, name: str, holder: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                f"DELETE FROM {self.table}_leases WHERE name = %s AND holder = %s", (name, holder)
            )

    # -------------------------------------------------------------- lifecycle
    def ping(self) -> None:
        with self._pool.connection() as conn:
            conn.execute("SELECT 1")

    def reconnect(self) -> None:
        # Close the idle connections (after an outage they are dead) and open new ones in the
        # background; connections in use are replaced when they come back.
        self._pool.drain()

    def bus(self) -> Bus | None:
        """``thrifty_drops_<table>`` in this database: stores of one table share it."""
        if not self._broadcast:
            return None
        channel = f"thrifty_drops_{self.table}"[:63]  # an identifier's length
        return PostgresBus(self._conninfo, channel, self.timeouts["connect_timeout"])

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresStore({redact_url(self.url)!r}, table={self.table!r})"
