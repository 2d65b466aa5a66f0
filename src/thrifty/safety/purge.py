"""``purge user``: every trace of one end user removed, not merely unlinked.

A user purge (GDPR erasure) is more than ``invalidate(user_id=...)``: the deleted rows' bytes
stay in SQLite's free pages and WAL and in PostgreSQL's dead row versions until something
overwrites them, and other parts of a deployment (a cost ledger with per-request rows) hold the
user's data too. :func:`purge_user` does all of it, in order:

1. the cache's entries of the user (every namespace; under encryption, found by the user id's
   keyed hash under every key of the keyring), which also takes the semantic index's rows and
   vectors out (the index file is saved at once, see ``SemanticMatcher.invalidated``);
2. ``store.scrub()``: the backend erases what the deletes left on disk (SQLite: VACUUM with
   ``secure_delete`` and a WAL checkpoint that truncates it; PostgreSQL: VACUUM);
3. each :class:`PurgeHook`: any other holder of per-user rows. A ledger joins by implementing
   ``name`` and ``purge_user(user_id) -> int`` (rows removed) and being appended to
   ``Gateway.purge_hooks``; the purge route and its audit record then include it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from thrifty.errors import ConfigError
from thrifty.store.base import Store


class PurgeHook(Protocol):
    """A holder of per-user data other than the cache (e.g. the cost ledger)."""

    name: str
    """Names the hook in the purge report and the audit log (``"ledger"``)."""

    def purge_user(self, user_id: str) -> int:
        """Delete (for good) every row of ``user_id``; returns how many rows went."""
        ...


class Purgeable(Protocol):
    """What a purge needs of a cache (``thrifty.Cache`` is one)."""

    store: Store

    def invalidate(self, *, user_id: str) -> int: ...


@dataclass(slots=True)
class PurgeReport:
    """What a purge removed."""

    entries: int
    """Cache entries removed."""
    hooks: dict[str, int] = field(default_factory=dict)
    """Rows removed by each hook, by its name."""
    scrubbed: bool = True
    """The backend erased the deleted bytes (False: it could not, see the audit detail)."""
    error: str | None = None
    """Why the scrub or a hook failed (the entries were removed all the same)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "hooks": dict(self.hooks),
            "scrubbed": self.scrubbed,
            **({"error": self.error} if self.error else {}),
        }


def purge_user(cache: Purgeable, user_id: str, hooks: Iterable[PurgeHook] = ()) -> PurgeReport:
    """Remove every entry of ``user_id``, erase the deleted bytes, then run the hooks.

    A failing scrub or hook does not undo what was removed: it is reported (``scrubbed`` False,
    ``error``) so the caller can retry, and the audit log says so.

    Raises:
        ConfigError: ``user_id`` is empty.
        Whatever the backend raises when the deletion itself fails.
    """
    if not user_id:
        raise ConfigError("purge_user needs a user id")
    removed = cache.invalidate(user_id=user_id)
    report = PurgeReport(removed)
    try:
        cache.store.scrub()
    except Exception as exc:
        report.scrubbed = False
        report.error = f"scrub: {type(exc).__name__}: {exc}"
    for hook in hooks:
        try:
            report.hooks[hook.name] = hook.purge_user(user_id)
        except Exception as exc:
            report.error = f"{hook.name}: {type(exc).__name__}: {exc}"
    return report
