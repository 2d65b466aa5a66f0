"""The audit log's one protocol, its record and the actions it names.

An audit log answers "who did what to the cache, when, and did it work" for every admin action
(invalidate, purge, delete, clear, key rotation, feedback, configuration load). It lives in the
configured cache backend, beside the entries, so every gateway replica writes to and reads from
the same log and it is as durable as the cache itself (see ``thrifty/audit/__init__.py`` for
why a table and not a file).

Records never hold a secret or a person's id: the actor is a key's hash (``Principal.key_id``)
or a CLI user name, and an end user's id in a target is replaced by :func:`subject` (a SHA-256
digest), so a purge does not leave the purged id behind in the very log that records it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

log = logging.getLogger("thrifty.audit")

#: Most records one read returns.
MAX_READ = 1000


class AuditAction(StrEnum):
    """What was done (declared once; the log stores the value)."""

    CONFIG_LOAD = "config.load"
    STATS = "cache.stats"
    INVALIDATE = "cache.invalidate"
    PURGE_USER = "cache.purge_user"
    DELETE = "cache.delete"
    CLEAR = "cache.clear"
    ROTATE_KEY = "cache.rotate_key"
    FEEDBACK = "cache.feedback"
    AUDIT_READ = "audit.read"
    ADMIN_DENIED = "admin.denied"


class AuditResult(StrEnum):
    """How it ended."""

    OK = "ok"
    DENIED = "denied"
    NOT_FOUND = "not_found"
    ERROR = "error"


def subject(user_id: str) -> str:
    """An end user's id as the log records it: ``sha256:`` and 32 hex digits. Whoever knows the
    id can check that it was purged; the log alone does not reveal it."""
    return "sha256:" + hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:32]


@dataclass(slots=True)
class AuditRecord:
    """One line of the log.

    Attributes:
        action: an :class:`AuditAction` value.
        actor: who: ``key:<hash of the API key>``, ``admin:<hash>``, ``cli:<os user>``,
            ``gateway`` (startup); never a secret.
        target: what it applied to (selector fields, a namespace, a key id; user ids as
            :func:`subject`).
        result: an :class:`AuditResult` value.
        detail: what came of it (entries removed, entries re-encrypted, an error's type).
        at: when, seconds since the epoch.
        id: the backend's id for the record (ordered: later records have larger ids).
    """

    action: str
    actor: str
    target: dict[str, Any] = field(default_factory=dict)
    result: str = AuditResult.OK
    detail: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    id: str = ""

    def columns(self) -> tuple[float, str, str, str, str, str]:
        """The row the SQL backends store: (at, actor, action, target JSON, result, detail JSON)."""
        return (
            self.at,
            self.actor,
            str(self.action),
            dumps(self.target),
            str(self.result),
            dumps(self.detail),
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (``time`` is ``at`` in ISO 8601, UTC)."""
        when = dt.datetime.fromtimestamp(self.at, dt.UTC).isoformat(timespec="milliseconds")
        return {
            "id": self.id,
            "at": self.at,
            "time": when,
            "actor": self.actor,
            "action": str(self.action),
            "target": self.target,
            "result": str(self.result),
            "detail": self.detail,
        }

    @classmethod
    def from_row(
        cls,
        ident: object,
        at: float,
        actor: str,
        action: str,
        target: str | Mapping[str, Any] | None,
        result: str,
        detail: str | Mapping[str, Any] | None,
    ) -> AuditRecord:
        """A record read back from a backend (JSON columns as text or already decoded)."""
        return cls(action, actor, _obj(target), result, _obj(detail), float(at), str(ident))


def _obj(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    loaded = json.loads(value)
    return loaded if isinstance(loaded, dict) else {"value": loaded}


def dumps(value: Mapping[str, Any]) -> str:
    """JSON for a target or detail column (sorted keys: equal records, equal text)."""
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


class AuditLog(ABC):
    """Append-only storage of :class:`AuditRecord`, newest first on read.

    Implementations must be safe to call from several threads. :meth:`record` never raises:
    an audit backend that fails must not fail the admin action it describes, so the failure is
    logged (on the ``thrifty.audit`` logger, which also receives every record) and counted in
    :attr:`failures`.
    """

    #: True when the log outlives the process (every backend but ``memory://``).
    durable: bool = True

    def __init__(self) -> None:
        self.failures = 0

    def record(self, record: AuditRecord) -> AuditRecord:
        """Append ``record`` (its ``id`` is filled in when the backend gives one)."""
        log.info(
            "%s by %s on %s: %s %s",
            record.action,
            record.actor,
            dumps(record.target),
            record.result,
            dumps(record.detail),
        )
        try:
            record.id = self._append(record)
        except Exception as exc:
            self.failures += 1
            log.error("could not write the audit record of %s: %s", record.action, exc)
        return record

    def read(
        self, *, since: float | None = None, action: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """Records at or after ``since`` (epoch seconds), of one ``action`` (or a prefix of one
        ending in ``.``, e.g. ``cache.``), newest first, at most ``limit`` (<= 1000)."""
        limit = max(1, min(int(limit), MAX_READ))
        return self._read(since, action, limit)

    @abstractmethod
    def _append(self, record: AuditRecord) -> str:
        """Store one record; return its id."""

    @abstractmethod
    def _read(self, since: float | None, action: str | None, limit: int) -> list[AuditRecord]:
        """Newest first, filtered."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def parse_time(text: str) -> float:
    """Epoch seconds from ``text``: epoch seconds, or an ISO 8601 time (UTC when it names no
    zone).

    Raises:
        ValueError: it is neither, or not finite.
    """
    try:
        value = float(text)
    except ValueError:
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"expected epoch seconds or an ISO 8601 time, got {text!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"expected a finite time, got {text!r}")
    return value


def action_matches(action: str, wanted: str | None) -> bool:
    """``wanted`` is None, the action itself, or a prefix ending in ``.`` (``cache.``)."""
    if wanted is None:
        return True
    return action == wanted or (wanted.endswith(".") and action.startswith(wanted))


def like_pattern(wanted: str) -> tuple[str, str]:
    """(SQL operator, operand) matching :func:`action_matches` (a prefix as ``LIKE 'x.%'``)."""
    if wanted.endswith("."):
        escaped = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return "LIKE", escaped + "%"
    return "=", wanted
