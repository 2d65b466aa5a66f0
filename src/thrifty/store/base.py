"""The one protocol every storage backend implements.

The protocol is synchronous on purpose: the fastest drivers for SQLite, Redis and PostgreSQL
are synchronous, and sync callers such as LangChain's ``BaseCache.lookup`` must not pay for an
event loop on every hit. ``thrifty.Cache`` gives the async face (thread offload for I/O-bound
backends, a direct call for the in-memory one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from thrifty.entry import Entry, Selector
from thrifty.redact import redact_url
from thrifty.store.health import BackendHealth

if TYPE_CHECKING:
    from thrifty.store.bus import Bus


class Store(ABC):
    """A key → :class:`Entry` map with expiry, invalidation, limits and leases.

    Implementations must never return an expired entry, must enforce ``max_entries`` and
    ``max_bytes`` on ``set`` and must be safe to use from several threads.
    """

    #: The URL scheme(s) this backend serves, e.g. ``("sqlite",)``.
    schemes: tuple[str, ...] = ()
    #: True when calls do I/O, so async callers should run them in a thread.
    blocking: bool = True
    #: True when ``get`` is a quick local read that never waits for a lock, so async callers
    #: run it on the event loop (a thread hop would cost more than the read).
    inline_reads: bool = False
    #: True when several processes share the data (leases then coalesce across processes).
    shared: bool = False
    #: The URL the store was opened with (it may hold a password: show ``redact_url(url)``).
    url: str = ""
    #: Exceptions that mean "the backend is unreachable or too slow" (refused, reset, timed
    #: out), as opposed to a bad call. A network backend lists its driver's here, and its
    #: circuit breaker (:class:`~thrifty.store.breaker.BreakerStore`) counts only these.
    outage_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, *, max_entries: int | None = None, max_bytes: int | None = None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    @abstractmethod
    def get(self, key: str) -> Entry | None:
        """The live entry under ``key``, or None (missing or expired)."""

    @abstractmethod
    def set(self, entry: Entry) -> None:
        """Store ``entry`` (replacing any entry with its key), then enforce the limits."""

    def set_many(self, entries: Sequence[Entry]) -> None:
        """Store several entries; a backend that can do it in one round trip or transaction
        overrides this (the write-behind queue hands over what piled up while it wrote)."""
        for entry in entries:
            self.set(entry)

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove one entry; True if it existed."""

    @abstractmethod
    def invalidate(self, selector: Selector) -> int:
        """Remove every entry the selector matches; returns how many were removed."""

    @abstractmethod
    def clear(self) -> None:
        """Remove every entry, lease and counter."""

    @abstractmethod
    def usage(self, namespace: str | None = None) -> tuple[int, int]:
        """(entries, bytes) of live entries, optionally within one namespace."""

    @abstractmethod
    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease ``name`` for ``ttl`` seconds unless another live holder has it."""

    @abstractmethod
    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease back if ``holder`` still holds it."""

    @abstractmethod
    def add_counters(self, namespace: str, counters: Mapping[str, float]) -> None:
        """Add to the persistent per-namespace counters (hits, misses, tokens, dollars saved)."""

    @abstractmethod
    def read_counters(self, namespace: str | None = None) -> dict[str, float]:
        """Sum of the counters, in one namespace or in all."""

    def iter_entries(
        self, namespace: str | None = None, *, since: float | None = None
    ) -> Iterator[Entry]:
        """Live entries that carry a ``semantic`` record, optionally in one namespace and
        created at or after ``since``; used to rebuild or catch up a semantic index.

        Raises:
            NotImplementedError: the backend cannot list entries (the semantic index then
                lives only in its file and in memory).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot list entries")

    def iter_keys(self, namespace: str | None = None) -> Iterator[str]:
        """The keys of every live entry (with or without a semantic record), optionally in
        one namespace; ``thrifty cache rotate-key`` walks them.

        Raises:
            NotImplementedError: the backend cannot list its keys.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot list keys")

    def scrub(self) -> None:  # noqa: B027 - optional hook
        """Erase for good what deletes left behind on disk (a user purge calls it): SQLite's
        free pages and WAL, PostgreSQL's dead row versions. Nothing to do where a delete
        already frees the data (memory, Redis)."""

    def ping(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~thrifty.errors.BackendError` if the backend is unusable."""

    def reconnect(self) -> None:  # noqa: B027 - optional hook
        """Drop idle pooled connections, so the next call connects afresh.

        A breaker calls it before its probe: after an outage, connections pooled before it are
        dead, and a probe that picked one would fail against a backend that is back.
        """

    def health(self) -> BackendHealth:
        """Up or down, and why. A local store is up while it exists; a network store opened
        by :func:`~thrifty.store.open_store` reports its circuit breaker's view."""
        return BackendHealth(backend=redact_url(self.url), up=True)

    def bus(self) -> Bus | None:
        """A channel on this store's server for messages between replicas (``bus.py``);
        None for a store that only one process uses."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
