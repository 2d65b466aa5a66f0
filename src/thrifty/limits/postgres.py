"""Limits counted in PostgreSQL, shared by every gateway replica: each step one transaction
that locks the key's row (``SELECT … FOR UPDATE``), so concurrent reservations of one key are
checked one after the other and a burst can never reserve past the budget.

Two tables (``table`` names them; tests use their own):

- ``{table}``: one row per key: the request and token bucket levels and when they were
  measured, and the dollars ``spent``;
- ``{table}_reservations``: open reservations (key, id, dollars, when they lapse).

Time comes from the server (``clock_timestamp()``), so replicas with skewed clocks agree. The
checks are the memory backend's (``limits/memory.py``), run on the locked row's values.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import anyio

from thrifty.errors import ConfigError
from thrifty.limits.base import (
    RESERVATION_TTL_SECONDS,
    KeyLimits,
    LimitBackend,
    LimitState,
    Reservation,
    refusal,
    refusal_detail,
)
from thrifty.limits.memory import TokenBucket, _KeyCounters, _verdict, _with
from thrifty.store._url import pop_query

DEFAULT_TABLE = "thrifty_limits"
POOL_MAX = 8
#: Seconds one limits statement may run; past it the request is let through (fail-open).
STATEMENT_TIMEOUT_MS = 2000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


class PostgresLimitBackend(LimitBackend):
    """Counters in PostgreSQL rows, each reservation and settlement one locking transaction.

    Args:
        url: ``postgresql://user@host/db`` (``?table=`` names the tables).
        table: the tables' name (default ``thrifty_limits``).
        reservation_ttl: seconds after which an unsettled reservation stops counting.
        clock: seconds (tests pass a fake); default: the server's clock.
    """

    def __init__(
        self,
        url: str,
        *,
        table: str | None = None,
        reservation_ttl: float = RESERVATION_TTL_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        from psycopg_pool import ConnectionPool

        self._clock = clock

        url, query = pop_query(url, ("table",))
        self.name = url  # readiness and metrics (the password masked there)
        self.table = table or query.get("table") or DEFAULT_TABLE
        if not _NAME.match(self.table):
            raise ConfigError(f"limits table {self.table!r}: letters, digits and _ only")
        self._reservation_ttl = reservation_ttl
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_MAX,
            kwargs={"options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"},
            open=True,
        )
        self._ready = False
        try:  # now, not racing the first burst of requests (a server down: on first use)
            with self._pool.connection(timeout=5) as conn:
                self._setup(conn)
        except Exception:
            self._ready = False

    def _setup(self, conn: Any) -> None:
        if self._ready:
            return
        t = self.table
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t} (key TEXT PRIMARY KEY, rq DOUBLE PRECISION, "
            "rq_at DOUBLE PRECISION NOT NULL DEFAULT 0, tk DOUBLE PRECISION, "
            "tk_at DOUBLE PRECISION NOT NULL DEFAULT 0, "
            "spent DOUBLE PRECISION NOT NULL DEFAULT 0)"
        )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t}_reservations (key TEXT NOT NULL, id TEXT NOT NULL, "
            "cost DOUBLE PRECISION NOT NULL, lapses DOUBLE PRECISION NOT NULL, "
            "PRIMARY KEY (key, id))"
        )
        self._ready = True

    def _locked(self, conn: Any, key: str) -> tuple[_KeyCounters, float]:
        """The key's counters, its row locked until the transaction ends; lapsed
        reservations dropped."""
        t = self.table
        conn.execute(f"INSERT INTO {t} (key) VALUES (%s) ON CONFLICT DO NOTHING", (key,))
        row = conn.execute(
            f"SELECT rq, rq_at, tk, tk_at, spent, extract(epoch from clock_timestamp()) "
            f"FROM {t} WHERE key = %s FOR UPDATE",
            (key,),
        ).fetchone()
        now = float(row[5]) if self._clock is None else self._clock()
        conn.execute(f"DELETE FROM {t}_reservations WHERE key = %s AND lapses <= %s", (key, now))
        open_ = conn.execute(
            f"SELECT id, cost, lapses FROM {t}_reservations WHERE key = %s", (key,)
        ).fetchall()
        counters = _KeyCounters(
            requests=TokenBucket(row[0], float(row[1])),
            tokens=TokenBucket(row[2], float(row[3])),
            spent=float(row[4]),
            reservations={rid: (float(cost), float(lapses)) for rid, cost, lapses in open_},
        )
        return counters, now

    def _save(self, conn: Any, key: str, counters: _KeyCounters) -> None:
        conn.execute(
            f"UPDATE {self.table} SET rq = %s, rq_at = %s, tk = %s, tk_at = %s, spent = %s "
            "WHERE key = %s",
            (
                counters.requests.level, counters.requests.at, counters.tokens.level,
                counters.tokens.at, counters.spent, key,
            ),
        )  # fmt: skip

    def _reserve_sync(
        self, key: str, limits: KeyLimits, tokens: int, cost_usd: float
    ) -> Reservation:
        with self._pool.connection() as conn, conn.transaction():
            self._setup(conn)
            counters, now = self._locked(conn, key)
            state = _snapshot(counters, limits, now)
            verdict, retry_after = _verdict(limits, state, tokens, cost_usd)
            if verdict is not None:
                raise refusal(
                    verdict, state, retry_after, refusal_detail(verdict, limits, tokens, state)
                )
            if limits.rpm is not None:
                counters.requests.take(1, limits.rpm, now)
            if limits.tpm is not None:
                counters.tokens.take(tokens, limits.tpm, now)
            rid = uuid.uuid4().hex if cost_usd > 0 else ""
            if rid:
                lapses = now + self._reservation_ttl
                counters.reservations[rid] = (cost_usd, lapses)
                conn.execute(
                    f"INSERT INTO {self.table}_reservations (key, id, cost, lapses) "
                    "VALUES (%s, %s, %s, %s)",
                    (key, rid, cost_usd, lapses),
                )
            self._save(conn, key, counters)
            return Reservation(key, rid, limits, tokens, cost_usd, _snapshot(counters, limits, now))

    def _settle_sync(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        limits, key = reservation.limits, reservation.key
        with self._pool.connection() as conn, conn.transaction():
            self._setup(conn)
            counters, now = self._locked(conn, key)
            if reservation.id:
                conn.execute(
                    f"DELETE FROM {self.table}_reservations WHERE key = %s AND id = %s",
                    (key, reservation.id),
                )
            counters.spent += cost_usd
            extra = tokens - reservation.tokens
            if limits.tpm is not None and extra:
                counters.tokens.take(extra, limits.tpm, now)
            self._save(conn, key, counters)

    def _state_sync(self, key: str, limits: KeyLimits) -> LimitState:
        with self._pool.connection() as conn, conn.transaction():
            self._setup(conn)
            counters, now = self._locked(conn, key)
            return _snapshot(counters, limits, now)

    async def _reserve(
        self, key: str, limits: KeyLimits, tokens: int, cost_usd: float
    ) -> Reservation:
        return await anyio.to_thread.run_sync(self._reserve_sync, key, limits, tokens, cost_usd)

    async def _settle(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        await anyio.to_thread.run_sync(self._settle_sync, reservation, tokens, cost_usd)

    async def _state(self, key: str, limits: KeyLimits) -> LimitState:
        return await anyio.to_thread.run_sync(self._state_sync, key, limits)

    async def _ping(self) -> None:
        def run() -> None:
            with self._pool.connection(timeout=1) as conn:
                conn.execute("SELECT 1")

        await anyio.to_thread.run_sync(run)

    async def reset(self, key: str) -> None:
        def run() -> None:
            with self._pool.connection() as conn, conn.transaction():
                self._setup(conn)
                conn.execute(f"DELETE FROM {self.table}_reservations WHERE key = %s", (key,))
                conn.execute(f"DELETE FROM {self.table} WHERE key = %s", (key,))

        await anyio.to_thread.run_sync(run)

    def drop_tables(self) -> None:
        """Remove both tables (tests)."""
        with self._pool.connection() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {self.table}_reservations")
            conn.execute(f"DROP TABLE IF EXISTS {self.table}")
        self._ready = False

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._pool.close)


def _snapshot(counters: _KeyCounters, limits: KeyLimits, now: float) -> LimitState:
    state = LimitState(
        max_budget_usd=limits.max_budget_usd,
        spent_usd=counters.spent,
        reserved_usd=counters.reserved(now),
    )
    if limits.rpm is not None:
        state = _with(state, "requests", limits.rpm, counters.requests.current(limits.rpm, now))
    if limits.tpm is not None:
        state = _with(state, "tokens", limits.tpm, counters.tokens.current(limits.tpm, now))
    return state
