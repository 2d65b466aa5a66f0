"""The exact layer: entries by request key, read, decoded and built into the caller's objects.

This is the hit path, measured in microseconds (``benchmarks/bench_exact_cache.py``), so it is
kept flat: one store read, a memo check, one lock-free tally addition, one ``Hit``. It also
makes the entries the cache writes (encoding, lifetime, price) so reads and writes of the
stored shape live side by side.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from thrifty import codec
from thrifty.accounting.prices import PriceTable
from thrifty.cache.counters import Counters
from thrifty.cache.types import ENTRY_FIELDS, Hit
from thrifty.entry import Entry
from thrifty.policy import parse_ttl
from thrifty.store import Store

log = logging.getLogger("thrifty.cache")

#: Built values reused by ``lookup(build=...)`` (per cache, oldest dropped first).
BUILT_MEMO_SIZE = 16_384

Built = tuple[Callable[[Any], Any], bytes, Any]
"""(build, the payload it was built from, what it built)."""


class ExactLayer:
    """Reads and writes entries by key on one store.

    Args:
        store: the backend.
        counters: where hits are tallied and faults counted.
        namespace, ttl, namespace_ttl: the defaults of written entries.
        prices: values entries whose cost the caller did not give.
    """

    def __init__(
        self,
        store: Store,
        counters: Counters,
        namespace: str,
        ttl: float | None,
        namespace_ttl: Mapping[str, float],
        prices: PriceTable,
    ) -> None:
        self.store = store
        self._counters = counters
        self._tally = counters.tally
        self.namespace = namespace
        self.ttl = ttl
        self.namespace_ttl = dict(namespace_ttl)
        self.prices = prices
        self._built: dict[str, Built] = {}

    def lookup(self, key: str, namespace: str, build: Callable[[Any], Any] | None) -> Hit | None:
        """The hit for ``key`` (counted), or None; a corrupt entry is dropped and misses."""
        try:
            entry = self.store.get(key)
        except Exception as exc:
            self._counters.fault("get", exc)
            return None
        if entry is None:
            return None
        memo = entry.built  # the hit path of a memory store: no call, no decode
        if build is not None and memo is not None and memo[0] is build and memo[1] is entry.value:
            value = memo[2]
        else:
            try:
                value = self._decode(key, entry, build)
            except Exception as exc:  # CorruptEntryError, or a payload ``build`` rejects
                log.warning("dropping corrupt cache entry %s: %s", key[:16], exc)
                try:
                    self.store.delete(key)
                except Exception as error:
                    self._counters.fault("delete", error)
                return None
        # Look at the clock every 64 hits (per thread); stats() always flushes.
        if self._tally.add(namespace, entry) & 63 == 1:
            self._counters.flush_if_due()
        return Hit(value, entry)

    def peek(self, key: str) -> Hit | None:
        """Look without counting (while waiting for another process to store ``key``)."""
        try:
            entry = self.store.get(key)
            return None if entry is None else Hit(codec.decode(entry.value), entry)
        except Exception:
            return None

    def _decode(self, key: str, entry: Entry, build: Callable[[Any], Any] | None) -> Any:
        if build is None:
            return codec.decode(entry.value)
        memo = self._built.get(key)  # (an entry's own memo was checked by lookup already)
        if memo is not None and memo[0] is build and memo[1] == entry.value:
            return memo[2]
        value = build(codec.decode(entry.value))
        self.remember_built(entry, build, value)
        return value

    def remember_built(self, entry: Entry, build: Callable[[Any], Any], value: Any) -> None:
        """Reuse ``value`` for ``lookup(build=build)`` while the entry's payload is unchanged."""
        entry.built = (build, entry.value, value)
        if self.store.blocking:  # the store builds a new Entry per read: remember by key
            if len(self._built) >= BUILT_MEMO_SIZE:
                self._built.pop(next(iter(self._built)), None)
            self._built[entry.key] = entry.built

    def ttl_for(self, namespace: str, ttl: float | None = None) -> float | None:
        """Per-entry TTL, else the namespace's, else the cache's default."""
        if ttl is not None:
            return parse_ttl(ttl)  # a per-call TTL gets the bounds of the cache's own
        return self.namespace_ttl.get(namespace, self.ttl)

    def make_entry(
        self,
        key: str,
        value: Any,
        namespace: str | None = None,
        ttl: float | None = None,
        latency_ms: float = 0.0,
        **fields: Any,
    ) -> Entry:
        """The entry storing ``value``: encoded, with its lifetime and (priced) cost.

        Raises:
            TypeError: a field that is not in ENTRY_FIELDS.
        """
        unknown = set(fields) - ENTRY_FIELDS
        if unknown:
            raise TypeError(f"unknown entry fields: {', '.join(sorted(unknown))}")
        ns = namespace or self.namespace
        life = self.ttl_for(ns, ttl)
        now = time.time()
        if fields.get("cost_usd") is None:
            fields["cost_usd"] = self.prices.cost(
                fields.get("model"), fields.get("tokens_in", 0), fields.get("tokens_out", 0)
            )
        fields["tags"] = tuple(fields.get("tags") or ())
        return Entry(
            key=key,
            value=codec.encode(value),
            namespace=ns,
            created_at=now,
            expires_at=None if life is None else now + life,
            latency_ms=latency_ms,
            **fields,
        )

    def clear(self) -> None:
        """Forget the built values (the store is being cleared)."""
        self._built.clear()

    def forget(self, key: str) -> None:
        """Forget the built value of one entry (another replica deleted it)."""
        self._built.pop(key, None)
