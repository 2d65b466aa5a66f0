"""``thrifty.Cache``: one cache over any backend, with lifetimes, coalescing and accounting.

Backend faults never fail a request: a failed lookup is a miss, a failed write is skipped,
both are counted in ``stats().errors`` and logged (fail-open).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from thrifty import codec
from thrifty._cache_semantic import SemanticCacheMixin
from thrifty.accounting.prices import PriceTable
from thrifty.background import BackgroundJobs
from thrifty.coalesce import LeaderGone, SingleFlight, poll_delays
from thrifty.entry import Entry, Selector
from thrifty.errors import CoalesceTimeoutError, ConfigError
from thrifty.keys import request_key
from thrifty.store import Store, open_store
from thrifty.tally import HIT_COUNTERS, HitTally

if TYPE_CHECKING:
    from thrifty.semantic.matcher import SemanticMatcher

log = logging.getLogger("thrifty.cache")
T = TypeVar("T")

#: Entry fields a caller may set when storing (besides key and value).
ENTRY_FIELDS = frozenset(
    {"tags", "model", "model_version", "user_id", "tokens_in", "tokens_out", "cost_usd"}
)
COUNTER_FLUSH_SECONDS = 1.0
#: Answers the write-behind queue may hold; past it, misses store before answering.
WRITE_BEHIND_LIMIT = 10_000
#: Most queued answers stored in one transaction.
WRITE_BATCH = 256
#: Built values reused by ``lookup(build=...)`` (per Cache, oldest dropped first).
BUILT_MEMO_SIZE = 16_384


class _Behind(NamedTuple):
    """An answer already sent and not yet stored (write-behind)."""

    key: str
    value: Any
    options: dict[str, Any]
    """What ``set`` takes besides key and value (the request and kind of a semantic entry)."""
    lease: str | None
    future: Future[Any] | None = None  # the flight that stays open until it is stored


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What the cache did and what it saved."""

    hits: int = 0
    semantic_hits: int = 0
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
    kind: str = "hit"  # "hit" or "semantic_hit"
    similarity: float | None = None
    """Cosine similarity of the two questions, for a semantic hit."""
    id: str = ""
    """Names a semantic hit in :meth:`Cache.feedback`."""


class Cache(SemanticCacheMixin):
    """A cache over one backend chosen by URL.

    Args:
        url: ``memory://``, ``sqlite:///path.db`` (default ``sqlite:///.thrifty/cache.db``),
            ``redis://…`` or ``postgresql://…``.
        namespace: default namespace (tenant) for keys and entries.
        ttl: default time to live in seconds (None: forever).
        namespace_ttl: per-namespace TTLs, overriding ``ttl``.
        max_entries, max_bytes: eviction limits enforced by the backend.
        prices: the price table used to value what hits save.
        lease_ttl: how long a cross-process coalescing lease lives (a crashed holder blocks the
            others at most this long).
        coalesce_timeout: how long a caller waits for an identical in-flight request.
        holder: the name this cache takes coalescing leases under (default: random). A batch job
            passes a stable one, so that its run resumed after a crash re-takes the leases the
            crashed run left instead of waiting ``lease_ttl`` for them.
        store: an already-built :class:`~thrifty.store.Store` (then ``url`` is ignored).
        semantic: also answer reworded questions (see ``thrifty.semantic``); lookups and writes
            that pass the ``request`` take part. No embedder is loaded unless this is True.
        threshold: cosine similarity for a semantic hit (fixed-threshold policy).
        embedder: an :class:`~thrifty.semantic.Embedder` or a name (``"minilm"``, the default;
            ``"openai"``; ``"hashing"``).
        policy: a :class:`~thrifty.semantic.ThresholdPolicy` (overrides ``threshold``).
        guard: a :class:`~thrifty.semantic.Guard` that can block a semantic hit.
        verifier: ``(cached_value, fresh_value) -> bool``; when the policy asks to verify a
            near hit, the fresh answer is computed, compared and fed back to the policy.
        semantic_index: folder of the vector index ("auto": beside the store; None: memory).
        write_behind: async misses return their answer before it is stored; a background
            thread stores the answers in batches (one transaction each where the store can) and
            identical requests meanwhile are coalesced onto the answer. When WRITE_BEHIND_LIMIT
            answers wait, misses store before answering. A gateway saves the store write's
            latency this way; ``close()`` (or ``await adrain()``) finishes the pending writes.
        shared_leases: elect one computing process per key through leases in the store
            (default: when the store is shared). A lone process on a SQLite file passes False:
            each lease is a write transaction on the miss path, and nobody else would wait.

    Raises:
        UnknownSchemeError, BackendUnavailableError: when the backend cannot be opened.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str = "default",
        ttl: float | None = None,
        namespace_ttl: Mapping[str, float] | None = None,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        prices: PriceTable | None = None,
        lease_ttl: float = 60.0,
        coalesce_timeout: float = 300.0,
        holder: str | None = None,
        store: Store | None = None,
        semantic: bool = False,
        threshold: float | None = None,
        embedder: Any = None,
        policy: Any = None,
        guard: Any = None,
        verifier: Callable[[Any, Any], bool] | None = None,
        semantic_index: Any = "auto",
        write_behind: bool = False,
        shared_leases: bool | None = None,
    ) -> None:
        if ttl is not None and ttl <= 0:
            raise ConfigError("ttl must be positive seconds or None")
        options: dict[str, Any] = {}
        if max_entries is not None:
            options["max_entries"] = max_entries
        if max_bytes is not None:
            options["max_bytes"] = max_bytes
        self.store: Store = store if store is not None else open_store(url, **options)
        self.url = url or getattr(self.store, "url", "")
        self.namespace = namespace
        self.ttl = ttl
        self.namespace_ttl = dict(namespace_ttl or {})
        self.prices = prices or PriceTable()
        self.lease_ttl = lease_ttl
        self.coalesce_timeout = coalesce_timeout
        self._flights = SingleFlight()
        self.write_behind = write_behind
        self.shared_leases = self.store.shared and shared_leases is not False
        self._background = BackgroundJobs(lambda exc: self._fault("write behind", exc))
        self._behind: deque[_Behind] = deque()  # answers to store (write-behind)
        self._behind_lock = threading.Lock()
        self._behind_scheduled = False  # a background job is storing the queue
        self._holder = holder or uuid.uuid4().hex
        self._pending: defaultdict[str, defaultdict[str, float]] = defaultdict(
            lambda: defaultdict(float)
        )
        self._pending_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._errors = 0
        self._built: dict[str, tuple[Callable[[Any], Any], bytes, Any]] = {}
        self._hits = HitTally()
        self.semantic: SemanticMatcher | None = None
        self.verifier = verifier
        self._served: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._verifying: OrderedDict[str, tuple[str, float, Any]] = OrderedDict()
        if semantic:
            from thrifty.semantic.matcher import build_matcher

            self.semantic = build_matcher(
                self.store, embedder, threshold, policy, guard, semantic_index
            )

    # ----------------------------------------------------------------- keys
    def key(
        self, request: Mapping[str, Any], *, kind: str = "chat", namespace: str | None = None
    ) -> str:
        """The canonical key of an OpenAI-shaped request in this cache's namespace."""
        return request_key(request, namespace or self.namespace, kind)

    def ttl_for(self, namespace: str, ttl: float | None = None) -> float | None:
        """Per-entry TTL, else the namespace's, else the cache's default."""
        if ttl is not None:
            return ttl
        return self.namespace_ttl.get(namespace, self.ttl)

    # ------------------------------------------------------------ counters
    def _count(self, namespace: str, **amounts: float) -> None:
        with self._pending_lock:
            bucket = self._pending[namespace]
            for name, value in amounts.items():
                bucket[name] += value
        if time.monotonic() - self._last_flush > COUNTER_FLUSH_SECONDS:
            self._flush_off_loop()

    def _count_hit(self, namespace: str, entry: Entry) -> None:
        """:meth:`_count` for an exact hit, without the keyword dict and loop (the hit path)."""
        # Look at the clock every 64 hits (per thread); stats() always flushes.
        if self._hits.add(namespace, entry) & 63 == 1 and (
            time.monotonic() - self._last_flush > COUNTER_FLUSH_SECONDS
        ):
            self._flush_off_loop()

    def _flush_off_loop(self) -> None:
        """Flush now, or on the background thread when on an event loop and the flush is a
        blocking write."""
        if not self.store.blocking:
            self.flush()
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._last_flush = time.monotonic()  # one flush in flight at a time
        self._background.submit(self.flush)

    def flush(self) -> None:
        """Write buffered hit/miss counters to the backend (shared stores then sum replicas)."""
        with self._pending_lock:
            pending, self._pending = self._pending, defaultdict(lambda: defaultdict(float))
            self._last_flush = time.monotonic()
        hits = self._hits.take()
        for namespace, sums in hits.items():
            bucket = pending[namespace]
            for name, value in zip(HIT_COUNTERS, sums, strict=True):
                bucket[name] += value
        for namespace, counters in pending.items():
            try:
                self.store.add_counters(namespace, counters)
            except Exception as exc:  # fail-open: keep them for the next flush
                self._fault("flush counters", exc)
                with self._pending_lock:
                    for name, value in counters.items():
                        self._pending[namespace][name] += value

    def _fault(self, operation: str, exc: BaseException) -> None:
        self._errors += 1
        log.warning("thrifty cache backend failed during %s: %s", operation, exc)

    # -------------------------------------------------------- sync face
    def lookup(
        self,
        key: str,
        *,
        namespace: str | None = None,
        request: Mapping[str, Any] | None = None,
        kind: str = "chat",
        build: Callable[[Any], Any] | None = None,
    ) -> Hit | None:
        """The hit for ``key``, or None. Records the hit or miss and what it saved.

        With ``request`` (the request ``key`` was made from) and ``semantic=True``, an exact
        miss is followed by a semantic lookup among entries of the same scope.

        ``build`` turns the decoded payload into the caller's objects (e.g. LangChain
        generations). Its result is reused while the stored bytes stay the same, so callers
        that pass it must treat the value as read-only (as LangChain's own caches do). The
        store is still read on every lookup: expiry and invalidation are never bypassed.
        """
        ns = namespace or self.namespace
        try:
            entry = self.store.get(key)
        except Exception as exc:
            self._fault("get", exc)
            entry = None
        if entry is not None:
            memo = entry.built  # the hit path of a memory store: no call, no decode
            if (
                build is not None
                and memo is not None
                and memo[0] is build
                and memo[1] is entry.value
            ):
                self._count_hit(ns, entry)
                return Hit(memo[2], entry)
            try:
                value = self._decode(key, entry, build)
            except Exception as exc:  # CorruptEntryError, or a payload ``build`` rejects
                log.warning("dropping corrupt cache entry %s: %s", key[:16], exc)
                self._safe(self.store.delete, key)
                entry = None
        if entry is None:
            hit = None
            if request is not None and self.semantic is not None:
                hit = self._semantic_lookup(key, request, kind, ns)
                if hit is not None and build is not None:
                    hit.value = build(hit.value)
            if hit is None:
                self._count(ns, misses=1)
            return hit
        self._count_hit(ns, entry)
        return Hit(value, entry)

    def _decode(self, key: str, entry: Entry, build: Callable[[Any], Any] | None) -> Any:
        if build is None:
            return codec.decode(entry.value)
        memo = self._built.get(key)  # (an entry's own memo was checked by lookup already)
        if memo is not None and memo[0] is build and memo[1] == entry.value:
            return memo[2]
        value = build(codec.decode(entry.value))
        self._remember_built(entry, build, value)
        return value

    def _remember_built(self, entry: Entry, build: Callable[[Any], Any], value: Any) -> None:
        entry.built = (build, entry.value, value)
        if self.store.blocking:  # the store builds a new Entry per read: remember by key
            if len(self._built) >= BUILT_MEMO_SIZE:
                self._built.pop(next(iter(self._built)), None)
            self._built[entry.key] = entry.built

    def get(self, key: str, default: Any = None, *, namespace: str | None = None) -> Any:
        """The cached value under ``key``, or ``default``."""
        hit = self.lookup(key, namespace=namespace)
        return default if hit is None else hit.value

    def set(
        self,
        key: str,
        value: Any,
        *,
        namespace: str | None = None,
        ttl: float | None = None,
        latency_ms: float = 0.0,
        request: Mapping[str, Any] | None = None,
        kind: str = "chat",
        built: tuple[Callable[[Any], Any], Any] | None = None,
        **fields: Any,
    ) -> Entry | None:
        """Store ``value`` under ``key``; returns the entry (None if the backend failed).

        Extra keyword fields: tags, model, model_version, user_id, tokens_in, tokens_out,
        cost_usd (computed from the price table when omitted and a model is given).
        ``request``: the request ``key`` was made from; with ``semantic=True`` the entry is
        then indexed for semantic lookups. ``built``: ``(build, obj)`` where ``obj`` is what
        ``build`` makes of ``value``; later ``lookup(key, build=build)`` calls return ``obj``
        itself while the entry is unchanged (see :meth:`lookup`).
        """
        entry = self._prepare(
            key, value, request=request, kind=kind, namespace=namespace, ttl=ttl,
            latency_ms=latency_ms, **fields,
        )
        if not self._commit([entry]):
            return None
        if built is not None:
            self._remember_built(entry, built[0], built[1])
        return entry

    def _prepare(
        self, key: str, value: Any, *, request: Mapping[str, Any] | None = None,
        kind: str = "chat", **options: Any,
    ) -> Entry:
        """The entry to store, with its semantic record when the cache is semantic."""
        entry = self.make_entry(key, value, **options)
        if request is not None and self.semantic is not None:
            self._attach_semantic(entry, request, kind, value)
        return entry

    def _commit(self, entries: list[Entry]) -> bool:
        """Store prepared entries (in one transaction where the backend can), then index them."""
        if not self._safe(self.store.set_many, entries, op="set"):
            return False
        if self.semantic is not None:
            for entry in entries:
                if entry.semantic is not None:
                    self._safe(self.semantic.indexed, entry, op="semantic index")
        return True

    def make_entry(
        self,
        key: str,
        value: Any,
        *,
        namespace: str | None = None,
        ttl: float | None = None,
        latency_ms: float = 0.0,
        **fields: Any,
    ) -> Entry:
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

    def _safe(self, fn: Callable[..., Any], *args: Any, op: str | None = None) -> bool:
        try:
            fn(*args)
            return True
        except Exception as exc:
            self._fault(op or getattr(fn, "__name__", "call"), exc)
            return False

    def delete(self, key: str) -> bool:
        """Remove one entry."""
        if self.semantic is not None:
            self.semantic.forget(key)
        return self.store.delete(key)

    def invalidate(
        self,
        *,
        namespace: str | None = None,
        tag: str | None = None,
        model: str | None = None,
        model_version: str | None = None,
        user_id: str | None = None,
    ) -> int:
        """Remove every entry matching all the given fields; returns how many.

        ``invalidate(tag="doc:42")`` clears every answer built on document 42;
        ``invalidate(model="gpt-4o", model_version="2024-05")`` every answer of that version;
        ``invalidate(user_id="u1")`` every entry of a user.
        """
        selector = Selector(namespace, tag, model, model_version, user_id)
        if selector.is_empty():
            raise ConfigError(
                "invalidate() needs at least one of namespace, tag, model, "
                "model_version, user_id; use clear() to drop everything"
            )
        removed = self.store.invalidate(selector)
        if self.semantic is not None:  # the index forgets them (and a purged user's text) now
            self._safe(self.semantic.invalidated, selector, op="semantic invalidate")
        return removed

    def clear(self) -> None:
        """Remove every entry and counter."""
        with self._pending_lock:
            self._pending.clear()
        self._hits.clear()
        self._built.clear()
        self.store.clear()
        if self.semantic is not None:
            self.semantic.clear()

    def stats(self, namespace: str | None = None) -> CacheStats:
        """Hits, misses, entries, bytes, tokens and dollars saved (summed over replicas)."""
        self.flush()
        try:
            counters = self.store.read_counters(namespace)
            entries, size = self.store.usage(namespace)
        except Exception as exc:
            self._fault("stats", exc)
            counters, entries, size = {}, 0, 0
        return CacheStats(
            hits=int(counters.get("hits", 0)),
            semantic_hits=int(counters.get("semantic_hits", 0)),
            misses=int(counters.get("misses", 0)),
            errors=self._errors,
            entries=entries,
            bytes=size,
            tokens_saved=int(counters.get("tokens_saved", 0)),
            usd_saved=float(counters.get("usd_saved", 0.0)),
            latency_saved_ms=float(counters.get("latency_saved_ms", 0.0)),
        )

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], T],
        *,
        namespace: str | None = None,
        ttl: float | None = None,
        describe: Callable[[T], Mapping[str, Any]] | None = None,
        store: bool = True,
        request: Mapping[str, Any] | None = None,
        kind: str = "chat",
        on_hit: Callable[[Hit], None] | None = None,
        **fields: Any,
    ) -> tuple[T, str]:
        """The cached value, or ``compute()`` run once for all identical concurrent callers.

        Args:
            describe: maps the computed value to entry fields (tokens, model, cost…).
            store: False to compute without writing (e.g. ``no-store``).
            request, kind: the request ``key`` was made from, for semantic lookup and indexing.
            on_hit: called with the :class:`Hit` when the answer comes from the cache (a
                gateway reports a semantic hit's similarity and id from it).

        Returns:
            (value, status) where status is "hit", "semantic_hit", "miss" or "coalesced".
        """
        hit = self.lookup(key, namespace=namespace, request=request, kind=kind)
        if hit is not None:
            if on_hit is not None:
                on_hit(hit)
            return hit.value, hit.kind
        if request is not None:
            fields = {**fields, "request": request, "kind": kind}
        future, leader = self._flights.join(key)
        if not leader:
            try:
                return future.result(timeout=self.coalesce_timeout), "coalesced"
            except TimeoutError as exc:
                raise CoalesceTimeoutError(
                    f"waited {self.coalesce_timeout}s for {key[:16]}"
                ) from exc
            except LeaderGone:  # the leader was interrupted: take over
                return self.get_or_compute(
                    key,
                    compute,
                    namespace=namespace,
                    ttl=ttl,
                    describe=describe,
                    store=store,
                    **fields,
                )
        try:
            value, status = self._lead(key, compute, namespace, ttl, describe, store, fields)
            future.set_result(value)
            return value, status
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else LeaderGone())
            raise
        finally:
            self._flights.finish(key, future)

    def _lead(self, key, compute, namespace, ttl, describe, store, fields):  # type: ignore[no-untyped-def]
        lease = f"coalesce:{key}"
        leased = self._take_lease(lease)
        deadline = time.monotonic() + self.lease_ttl
        delays = poll_delays()
        while not leased and time.monotonic() < deadline:
            time.sleep(next(delays))
            hit = self._peek(key)
            if hit is not None:
                return hit.value, "coalesced"
            leased = self._take_lease(lease)
        try:
            started = time.perf_counter()
            value = compute()
            elapsed_ms = (time.perf_counter() - started) * 1000
            if store:
                extra = {**fields, **(describe(value) if describe else {})}
                self.set(key, value, namespace=namespace, ttl=ttl, latency_ms=elapsed_ms, **extra)
            return value, "miss"
        finally:
            if leased:
                self._safe(self.store.release_lease, lease, self._holder, op="release lease")

    def _take_lease(self, name: str) -> bool:
        if not self.shared_leases:
            return True
        try:
            return self.store.acquire_lease(name, self._holder, self.lease_ttl)
        except Exception as exc:
            self._fault("acquire lease", exc)
            return True  # fail-open: compute ourselves

    def _peek(self, key: str) -> Hit | None:
        """Look without counting (used while waiting for another process)."""
        try:
            entry = self.store.get(key)
            return None if entry is None else Hit(codec.decode(entry.value), entry)
        except Exception:
            return None

    # ------------------------------------------------------- async face
    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.store.blocking:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def alookup(
        self,
        key: str,
        *,
        namespace: str | None = None,
        request: Mapping[str, Any] | None = None,
        kind: str = "chat",
        build: Callable[[Any], Any] | None = None,
    ) -> Hit | None:
        if request is not None and self.semantic is not None:
            # embedding is CPU work: keep it off the event loop even for memory://
            return await asyncio.to_thread(
                self.lookup, key, namespace=namespace, request=request, kind=kind, build=build
            )
        if self.store.inline_reads:  # a primary-key read costs less than a thread hop
            return self.lookup(key, namespace=namespace, build=build)
        return await self._call(self.lookup, key, namespace=namespace, build=build)

    async def aget(self, key: str, default: Any = None, *, namespace: str | None = None) -> Any:
        return await self._call(self.get, key, default, namespace=namespace)

    async def aset(self, key: str, value: Any, **kwargs: Any) -> Entry | None:
        if kwargs.get("request") is not None and self.semantic is not None:
            return await asyncio.to_thread(self.set, key, value, **kwargs)
        return await self._call(self.set, key, value, **kwargs)

    async def adelete(self, key: str) -> bool:
        return await self._call(self.delete, key)

    async def ainvalidate(self, **selector: Any) -> int:
        return await self._call(self.invalidate, **selector)

    async def aclear(self) -> None:
        await self._call(self.clear)

    async def astats(self, namespace: str | None = None) -> CacheStats:
        return await self._call(self.stats, namespace)

    async def aget_or_compute(
        self,
        key: str,
        compute: Callable[[], Awaitable[T]],
        *,
        namespace: str | None = None,
        ttl: float | None = None,
        describe: Callable[[T], Mapping[str, Any]] | None = None,
        store: bool = True,
        request: Mapping[str, Any] | None = None,
        kind: str = "chat",
        on_hit: Callable[[Hit], None] | None = None,
        **fields: Any,
    ) -> tuple[T, str]:
        """Async twin of :meth:`get_or_compute`; ``compute`` is a coroutine function."""
        hit = await self.alookup(key, namespace=namespace, request=request, kind=kind)
        if hit is not None:
            if on_hit is not None:
                on_hit(hit)
            return hit.value, hit.kind
        if request is not None:
            fields = {**fields, "request": request, "kind": kind}
        future, leader = self._flights.join(key)
        if not leader:
            try:
                # shield: a waiter that is cancelled must not cancel the shared future
                waiter = asyncio.shield(asyncio.wrap_future(future))
                value = await asyncio.wait_for(waiter, self.coalesce_timeout)
                return value, "coalesced"
            except TimeoutError as exc:
                raise CoalesceTimeoutError(
                    f"waited {self.coalesce_timeout}s for {key[:16]}"
                ) from exc
            except LeaderGone:  # the leader was cancelled: take over
                return await self.aget_or_compute(
                    key,
                    compute,
                    namespace=namespace,
                    ttl=ttl,
                    describe=describe,
                    store=store,
                    **fields,
                )
        behind: list[_Behind] = []
        try:
            value, status = await self._alead(
                key, compute, namespace, ttl, describe, store, fields, behind
            )
            future.set_result(value)
            return value, status
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else LeaderGone())
            raise
        finally:
            if behind:  # the answer is out; the flight stays open until it is stored
                self._queue_behind(behind[0]._replace(future=future))
            else:
                self._flights.finish(key, future)

    def _queue_behind(self, item: _Behind) -> None:
        with self._behind_lock:
            self._behind.append(item)
            if self._behind_scheduled:
                return
            self._behind_scheduled = True
        self._background.submit(self._store_behind)

    def _store_behind(self) -> None:
        """Store what the write-behind queue holds, up to WRITE_BATCH answers per transaction
        (under load the queue fills while a batch is written, and the next batch takes it)."""
        while True:
            with self._behind_lock:
                batch = [self._behind.popleft() for _ in range(min(len(self._behind),
                                                                   WRITE_BATCH))]
                if not batch:
                    self._behind_scheduled = False
                    return
            try:
                entries = []
                for item in batch:
                    try:
                        entries.append(self._prepare(item.key, item.value, **item.options))
                    except Exception as exc:  # this answer cannot be stored; the rest can
                        self._fault("write behind", exc)
                    # Hand the GIL over between entries: encoding a batch is pure Python, and
                    # the event loop must not wait for all of it to take its next request.
                    time.sleep(0)
                self._commit(entries)
            finally:
                for item in batch:
                    if item.lease is not None:
                        self._safe(self.store.release_lease, item.lease, self._holder)
                    if item.future is not None:
                        self._flights.finish(item.key, item.future)

    async def adrain(self) -> None:
        """Wait for the answers still being stored in the background (``write_behind``)."""
        await self._background.drain()

    async def _alead(self, key, compute, namespace, ttl, describe, store, fields, behind):  # type: ignore[no-untyped-def]
        lease = f"coalesce:{key}"
        # without shared leases there is nothing to take or release: skip the thread hops
        leased = await self._call(self._take_lease, lease) if self.shared_leases else False
        deadline = time.monotonic() + self.lease_ttl
        delays = poll_delays()
        while self.shared_leases and not leased and time.monotonic() < deadline:
            await asyncio.sleep(next(delays))
            hit = await self._call(self._peek, key)
            if hit is not None:
                return hit.value, "coalesced"
            leased = await self._call(self._take_lease, lease)
        try:
            started = time.perf_counter()
            value = await compute()
            elapsed_ms = (time.perf_counter() - started) * 1000
            if store:
                extra = {**fields, **(describe(value) if describe else {})}
                # Write-behind: the background thread stores it and frees the lease. A queue
                # that is full (the store cannot keep up) makes misses store before answering.
                if self.write_behind and len(self._behind) < WRITE_BEHIND_LIMIT:
                    extra.pop("built", None)  # a memo of built objects is for lookups in hand
                    options = {"namespace": namespace, "ttl": ttl, "latency_ms": elapsed_ms}
                    behind.append(_Behind(key, value, {**options, **extra},
                                          lease if leased else None))
                    leased = False
                    return value, "miss"
                await self.aset(
                    key, value, namespace=namespace, ttl=ttl, latency_ms=elapsed_ms, **extra
                )
            return value, "miss"
        finally:
            if leased:
                await self._call(self._safe, self.store.release_lease, lease, self._holder)

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self._background.close()  # the answers still being stored in the background
        self.flush()
        if self.semantic is not None:
            self.semantic.close()
        self.store.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cache({self.url!r}, namespace={self.namespace!r})"
