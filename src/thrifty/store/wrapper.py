"""``StoreWrapper``: a store in front of another, passing every call through.

The breaker (``breaker.py``) and encryption at rest (``sealed.py``) are layers around a backend.
Each overrides only the calls it changes; this base copies the backend's traits (URL, blocking,
shared…) once and forwards the rest, so a wrapper never re-lists the protocol by hand.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from thrifty.entry import Entry, Selector
from thrifty.store.base import Store
from thrifty.store.bus import Bus
from thrifty.store.health import BackendHealth


class StoreWrapper(Store):
    """Every :class:`Store` call forwarded to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Store) -> None:
        super().__init__(max_entries=inner.max_entries, max_bytes=inner.max_bytes)
        self.inner = inner
        self.schemes = inner.schemes
        self.blocking = inner.blocking
        self.inline_reads = inner.inline_reads
        self.shared = inner.shared
        self.url = inner.url
        self.outage_errors = inner.outage_errors

    def get(self, key: str) -> Entry | None:
        return self.inner.get(key)

    def set(self, entry: Entry) -> None:
        self.inner.set(entry)

    def set_many(self, entries: Sequence[Entry]) -> None:
        self.inner.set_many(entries)

    def delete(self, key: str) -> bool:
        return self.inner.delete(key)

    def bus(self) -> Bus | None:
        return self.inner.bus()

    def invalidate(self, selector: Selector) -> int:
        return self.inner.invalidate(selector)

    def clear(self) -> None:
        self.inner.clear()

    def usage(self, namespace: str | None = None) -> tuple[int, int]:
        return self.inner.usage(namespace)

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        return self.inner.acquire_lease(name, holder, ttl)

    def release_lease(self, name: str, holder: str) -> None:
        self.inner.release_lease(name, holder)

    def add_counters(self, namespace: str, counters: Mapping[str, float]) -> None:
        self.inner.add_counters(namespace, counters)

    def read_counters(self, namespace: str | None = None) -> dict[str, float]:
        return self.inner.read_counters(namespace)

    def iter_entries(
        self, namespace: str | None = None, *, since: float | None = None
    ) -> Iterator[Entry]:
        return self.inner.iter_entries(namespace, since=since)

    def iter_keys(self, namespace: str | None = None) -> Iterator[str]:
        return self.inner.iter_keys(namespace)

    def scrub(self) -> None:
        self.inner.scrub()

    def ping(self) -> None:
        self.inner.ping()

    def reconnect(self) -> None:
        self.inner.reconnect()

    def health(self) -> BackendHealth:
        return self.inner.health()

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"
