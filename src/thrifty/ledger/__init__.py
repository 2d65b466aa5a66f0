"""The savings ledger: one row per request — what it cost, what it would have cost, and which
mechanism made the difference — in SQLite (default), PostgreSQL or memory.

Read API (stable; ``thrifty stats``, ``GET /admin/ledger/summary`` and the dashboard use it):
:meth:`Ledger.summary` (totals, per tenant, mechanism, model and day), :meth:`Ledger.series`
(per hour or day and mechanism) and :meth:`Ledger.rows` (the raw log). Purging:
:meth:`Ledger.purge_user`, :meth:`Ledger.delete_tenant`, :meth:`Ledger.purge_before`.
"""

from __future__ import annotations

from typing import Any

from thrifty.errors import ConfigError
from thrifty.ledger.memory import MemoryLedger
from thrifty.ledger.types import (
    Bucket,
    Ledger,
    LedgerRow,
    LedgerSummary,
    Mechanism,
    SeriesPoint,
    Totals,
    hash_user,
    parse_time,
    summarize,
)
from thrifty.ledger.writer import LedgerWriter

DEFAULT_LEDGER_URL = "sqlite:///.thrifty/ledger.db"
#: Rows older than this many days are removed unless told otherwise.
DEFAULT_RETENTION_DAYS = 90.0

__all__ = [
    "DEFAULT_LEDGER_URL",
    "Bucket",
    "Ledger",
    "LedgerRow",
    "LedgerSummary",
    "LedgerWriter",
    "Mechanism",
    "MemoryLedger",
    "SeriesPoint",
    "Totals",
    "default_ledger_url",
    "hash_user",
    "open_ledger",
    "open_ledger_writer",
    "parse_time",
    "summarize",
]


def default_ledger_url(cache_url: str | None) -> str:
    """A SQLite file beside the cache's when the cache is a SQLite file, memory beside a
    memory cache, else the default file."""
    if cache_url and cache_url.startswith("memory://"):
        return "memory://"
    if cache_url and cache_url.startswith("sqlite:///"):
        path = cache_url.removeprefix("sqlite:///").split("?", 1)[0]
        folder = path.rsplit("/", 1)[0] if "/" in path else ""
        return f"sqlite:///{folder}/ledger.db" if folder else "sqlite:///ledger.db"
    return DEFAULT_LEDGER_URL


def open_ledger(url: str | None = None, **options: Any) -> Ledger:
    """The ledger a URL names: ``memory://``, ``sqlite:///path.db``, ``postgresql://…``.

    Raises:
        ConfigError: any other scheme.
    """
    url = url or DEFAULT_LEDGER_URL
    if url.startswith("memory://"):
        return MemoryLedger()
    if url.startswith("sqlite:///"):
        from thrifty.ledger.sqlite import SqliteLedger

        return SqliteLedger(url, **options)
    if url.startswith(("postgresql://", "postgres://")):
        from thrifty.ledger.postgres import PostgresLedger

        return PostgresLedger(url, **options)
    raise ConfigError(f"ledger URL {url!r}: use memory://, sqlite:///path.db or postgresql://")


def open_ledger_writer(
    url: str | None,
    *,
    cache_url: str | None,
    retention_days: float | None = DEFAULT_RETENTION_DAYS,
) -> LedgerWriter:
    """The writer in front of the ledger ``url`` names, or by default the one beside the
    cache at ``cache_url`` (:func:`default_ledger_url`): what the gateway and
    ``thrifty batch run`` write their rows through."""
    return LedgerWriter(
        open_ledger(url or default_ledger_url(cache_url)), retention_days=retention_days
    )
