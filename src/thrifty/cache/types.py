"""The shapes the cache's parts and its callers share: statuses, hits, stats, a call's options.

Declared once here (instead of loose strings and argument lists in each part) so that the
exact layer, the semantic layer, the coalescing flow and the callers (gateway, wrapper, batch
engine) agree on them by construction; this module imports no other part of the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

if TYPE_CHECKING:
    from thrifty.entry import Entry, Selector

#: Entry fields a caller may set when storing (besides key and value).
ENTRY_FIELDS = frozenset(
    {"tags", "model", "model_version", "user_id", "tokens_in", "tokens_out", "cost_usd"}
)

Fault = Callable[[str, BaseException], None]
"""Reports a backend failure the cache survived: ``fault(operation, exception)``."""


class CacheStatus(StrEnum):
    """Where an answer came from. A ``str``: ``status == "hit"`` keeps working."""

    HIT = "hit"
    """Served from an exact match of the request key."""
    SEMANTIC_HIT = "semantic_hit"
    """Served from a stored answer to a reworded question."""
    MISS = "miss"
    """Computed by this caller (and stored unless told not to)."""
    COALESCED = "coalesced"
    """Computed once by another caller with the identical request in flight."""


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What the cache did and what it saved."""

    hits: int = 0
    semantic_hits: int = 0
    semantic_wrong_hits: int = 0
    """Semantic hits that feedback reported wrong."""
    misses: int = 0
    errors: int = 0
    entries: int = 0
    bytes: int = 0
    tokens_saved: int = 0
    usd_saved: float = 0.0
    latency_saved_ms: float = 0.0

    @property
    def lookups(self) -> int:
        return self.hits + self.semantic_hits + self.misses

    @property
    def hit_rate(self) -> float:
        return (self.hits + self.semantic_hits) / self.lookups if self.lookups else 0.0


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~0.5 µs more on every hit
class Hit:
    """A value served from the cache, with the entry it came from."""

    value: Any
    entry: Entry
    kind: CacheStatus = CacheStatus.HIT
    """``HIT`` or ``SEMANTIC_HIT``."""
    similarity: float | None = None
    """Cosine similarity of the two questions, for a semantic hit."""
    id: str = ""
    """Names a semantic hit in :meth:`Cache.feedback`."""


class EntryFields(TypedDict, total=False):
    """Metadata a caller may give a stored entry (see :class:`~thrifty.entry.Entry`)."""

    tags: Iterable[str]
    model: str | None
    model_version: str | None
    user_id: str | None
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    """What the call cost (default: priced from model and tokens by the price table)."""


class SelectorFields(TypedDict, total=False):
    """The fields :meth:`Cache.invalidate` matches entries on (all given ones must match)."""

    namespace: str | None
    tag: str | None
    model: str | None
    model_version: str | None
    user_id: str | None


class Scope(TypedDict, total=False):
    """Where a lookup or a write applies."""

    namespace: str | None
    """Namespace (tenant) of the lookup or entry (default: the cache's)."""
    request: Mapping[str, Any] | None
    """The request the key was made from: the further layers (semantic) then take part."""
    kind: str
    """The request's kind (``chat``, ``completion``, ``embedding``…)."""


class LookupOptions(Scope, total=False):
    """The options of :meth:`Cache.lookup` and :meth:`Cache.alookup`."""

    build: Callable[[Any], Any] | None
    """Turns the decoded payload into the caller's objects (memoized per entry)."""


class StoreOptions(Scope, EntryFields, total=False):
    """The options of :meth:`Cache.set` and :meth:`Cache.aset`."""

    ttl: float | None
    """Lifetime of the entry (default: the namespace's, else the cache's)."""
    latency_ms: float
    """How long computing the value took: what a hit on it saves."""
    built: tuple[Callable[[Any], Any], Any] | None
    """``(build, obj)``: ``obj`` is what ``build`` makes of the value; later lookups with
    ``build`` return ``obj`` itself while the entry is unchanged."""


class ComputeOptions(Scope, EntryFields, total=False):
    """The options of :meth:`Cache.get_or_compute` and :meth:`Cache.aget_or_compute`."""

    ttl: float | None
    """Lifetime of the stored entry (default: the namespace's, else the cache's)."""
    describe: Callable[[Any], Mapping[str, Any]] | None
    """Maps the computed value to entry fields (tokens, model, cost…)."""
    store: bool
    """False to compute without writing (e.g. ``no-store``)."""
    on_hit: Callable[[Hit], None] | None
    """Called with the :class:`Hit` when the answer comes from the cache (a gateway reports
    a semantic hit's similarity and id from it)."""


@dataclass(slots=True)  # not frozen (it is never changed): a frozen __init__ costs more
class ComputeCall:
    """One ``get_or_compute`` call, kept together so that a waiter taking over from a failed
    leader repeats the very same call (hooks, request and kind included)."""

    key: str
    compute: Callable[[], Any]
    namespace: str | None
    ttl: float | None
    describe: Callable[[Any], Mapping[str, Any]] | None
    store: bool
    request: Mapping[str, Any] | None
    kind: str
    on_hit: Callable[[Hit], None] | None
    fields: dict[str, Any]
    """Entry fields for the stored answer (tags, model, user_id…)."""

    @classmethod
    def of(
        cls,
        key: str,
        compute: Callable[[], Any],
        namespace: str | None = None,
        ttl: float | None = None,
        describe: Callable[[Any], Mapping[str, Any]] | None = None,
        store: bool = True,
        request: Mapping[str, Any] | None = None,
        kind: str = "chat",
        on_hit: Callable[[Hit], None] | None = None,
        **fields: Any,
    ) -> ComputeCall:
        """The call from ``get_or_compute``'s arguments (see :class:`ComputeOptions`)."""
        return cls(key, compute, namespace, ttl, describe, store, request, kind, on_hit, fields)

    def write_options(self, value: Any, latency_ms: float) -> dict[str, Any]:
        """What :meth:`Cache.set` takes besides key and value, for the computed ``value``."""
        options = {**self.fields, **(self.describe(value) if self.describe else {})}
        if self.request is not None:
            options["request"] = self.request
            options["kind"] = self.kind
        return {"namespace": self.namespace, "ttl": self.ttl, "latency_ms": latency_ms, **options}


def served(hit: Hit, on_hit: Callable[[Hit], None] | None) -> tuple[Any, CacheStatus]:
    """What ``get_or_compute`` returns for a hit (after telling ``on_hit``)."""
    if on_hit is not None:
        on_hit(hit)
    return hit.value, hit.kind


class Write(NamedTuple):
    """One write on its way to the store, as the layers see it before it is committed."""

    entry: Entry
    request: Mapping[str, Any] | None
    kind: str
    value: Any
    """The value before encoding (``entry.value`` holds its encoding)."""


class Layer:
    """A part consulted after the exact layer (the PII guard, the semantic layer).

    The facade walks its layers on an exact miss and on every write, delete, invalidation and
    clear, so that a new kind of lookup is one new layer, not one more branch in ``Cache``.
    Every hook does nothing by default: a layer overrides only the hooks it needs.
    """

    blocking: bool
    """True when lookups and writes that pass a request do CPU or I/O work (embedding): the
    async face then runs them on the cache's thread pool instead of the event loop."""

    def lookup(self, key: str, request: Mapping[str, Any], kind: str, namespace: str) -> Hit | None:
        """A hit for a request the exact layer missed, or None (counting its own hits)."""
        return None

    def admit(self, write: Write) -> Write | None:
        """What may be stored of ``write``: itself, a rewritten copy (the next layers see the
        copy), or None to store nothing (e.g. the PII guard under ``skip_store``)."""
        return write

    def prepare(self, entry: Entry, request: Mapping[str, Any], kind: str, value: Any) -> None:
        """Annotate an entry about to be stored (e.g. with its embedding)."""

    def commit(self, entries: list[Entry]) -> None:
        """Entries were stored: index them."""

    def delete(self, key: str) -> None:
        """One entry is being removed."""

    def invalidated(self, selector: Selector) -> None:
        """Entries matching ``selector`` were removed from the store."""

    def clear(self) -> None:
        """Every entry was removed."""

    def dropped_elsewhere(self, key: str | None, selector: Selector | None) -> None:
        """Another replica deleted ``key`` or invalidated ``selector`` (the store is done with
        them): drop this process's copies. Both None: it cleared the cache, or this process may
        have missed messages; drop every copy and rebuild from the store."""

    def close(self) -> None:
        """The cache is closing: release files and threads."""
