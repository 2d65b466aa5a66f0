"""A bounded in-process LRU store: the fastest backend, shared by nothing."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Mapping

from thrifty.entry import Entry, Selector
from thrifty.store.base import Store

DEFAULT_MAX_ENTRIES = 100_000


class MemoryStore(Store):
    """``memory://`` — an ``OrderedDict`` in LRU order behind one lock."""

    schemes = ("memory",)
    blocking = False
    shared = False

    def __init__(
        self,
        url: str = "memory://",
        *,
        max_entries: int | None = DEFAULT_MAX_ENTRIES,
        max_bytes: int | None = None,
    ) -> None:
        super().__init__(max_entries=max_entries, max_bytes=max_bytes)
        self.url = url
        self._data: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[str, float]] = {}
        self._counters: dict[str, defaultdict[str, float]] = {}

    def get(self, key: str) -> Entry | None:
        # No lock on the hit path: each OrderedDict method is one atomic step under the GIL, and
        # a writer removing the key between the two steps only costs the LRU bump.
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires_at is not None and time.time() >= entry.expires_at:
            with self._lock:
                if self._data.get(key) is entry:
                    self._pop(key)
            return None
        try:  # noqa: SIM105 - contextlib.suppress costs more than this hit path may spend
            self._data.move_to_end(key)
        except KeyError:
            pass
        return entry

    def set(self, entry: Entry) -> None:
        with self._lock:
            self._pop(entry.key)
            self._data[entry.key] = entry
            self._bytes += entry.size
            self._evict()

    def _pop(self, key: str) -> Entry | None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
        return entry

    def _evict(self) -> None:
        while self._data and (
            (self.max_entries is not None and len(self._data) > self.max_entries)
            or (self.max_bytes is not None and self._bytes > self.max_bytes)
        ):
            _, old = self._data.popitem(last=False)
            self._bytes -= old.size

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._pop(key) is not None

    def invalidate(self, selector: Selector) -> int:
        with self._lock:
            doomed = [k for k, e in self._data.items() if selector.matches(e)]
            for key in doomed:
                self._pop(key)
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0
            self._leases.clear()
            self._counters.clear()

    def usage(self, namespace: str | None = None) -> tuple[int, int]:
        now = time.time()
        with self._lock:
            live = [
                e
                for e in self._data.values()
                if not e.expired(now) and (namespace is None or e.namespace == namespace)
            ]
        return len(live), sum(e.size for e in live)

    def iter_entries(
        self, namespace: str | None = None, *, since: float | None = None
    ) -> Iterator[Entry]:
        now = time.time()
        with self._lock:
            snapshot = list(self._data.values())
        for entry in snapshot:
            if (
                entry.semantic is not None
                and not entry.expired(now)
                and (namespace is None or entry.namespace == namespace)
                and (since is None or entry.created_at >= since)
            ):
                yield entry

    def iter_keys(self, namespace: str | None = None) -> Iterator[str]:
        now = time.time()
        with self._lock:
            snapshot = list(self._data.values())
        for entry in snapshot:
            if not entry.expired(now) and (namespace is None or entry.namespace == namespace):
                yield entry.key

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        now = time.monotonic()
        with self._lock:
            current = self._leases.get(name)
            if current is not None and current[1] > now and current[0] != holder:
                return False
            self._leases[name] = (holder, now + ttl)
            return True

    def release_lease(self, name: str, holder: str) -> None:
        with self._lock:
            current = self._leases.get(name)
            if current is not None and current[0] == holder:
                del self._leases[name]

    def add_counters(self, namespace: str, counters: Mapping[str, float]) -> None:
        with self._lock:
            bucket = self._counters.setdefault(namespace, defaultdict(float))
            for name, value in counters.items():
                bucket[name] += value

    def read_counters(self, namespace: str | None = None) -> dict[str, float]:
        out: defaultdict[str, float] = defaultdict(float)
        with self._lock:
            for ns, bucket in self._counters.items():
                if namespace is None or ns == namespace:
                    for name, value in bucket.items():
                        out[name] += value
        return dict(out)
