"""``thrifty.Cache``: one cache over any backend, a thin facade over parts that each do one job.

The exact layer (``exact.py``) serves hits by key; further layers (``semantic.py``) are walked
only after an exact miss and on writes, deletes, invalidations and clears; coalescing
(``coalesce.py``, ``flow.py``) makes identical misses compute once; write-behind
(``write_behind.py``) stores answers after they were sent; counters (``counters.py``) buffer
what hits save. Backend faults never fail a request: a failed lookup is a miss, a failed write
is skipped, both are counted in ``stats().errors`` and logged (fail-open).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from thrifty.accounting.prices import PriceTable
from thrifty.cache.background import BackgroundJobs
from thrifty.cache.broadcast import open_broadcast
from thrifty.cache.coalesce import Leases, SingleFlight
from thrifty.cache.controls import SemanticControls
from thrifty.cache.counters import Counters
from thrifty.cache.exact import ExactLayer
from thrifty.cache.flow import Op, arun, compute_flow, run
from thrifty.cache.settings import (
    CoalesceSettings,
    ProtectSettings,
    SemanticSettings,
    SizeLimits,
    WriteBehindSettings,
)
from thrifty.cache.types import (
    CacheStats,
    CacheStatus,
    ComputeCall,
    ComputeOptions,
    Hit,
    Layer,
    LookupOptions,
    SelectorFields,
    StoreOptions,
    Write,
    served,
)
from thrifty.cache.write_behind import WriteBehind
from thrifty.entry import Entry, Selector
from thrifty.errors import ConfigError
from thrifty.keys import request_key
from thrifty.policy import parse_ttl
from thrifty.redact import redact_url
from thrifty.store import Store, open_store

if TYPE_CHECKING:
    from thrifty.cache.semantic import SemanticLayer
    from thrifty.semantic.matcher import SemanticMatcher

T = TypeVar("T")

#: Threads of a cache's own pool for blocking store calls made from the async face.
STORE_THREADS = 4


class Cache(SemanticControls):
    """A cache over one backend chosen by URL.

    Args:
        url_or_store: ``memory://``, ``sqlite:///path.db`` (default
            ``sqlite:///.thrifty/cache.db``), ``redis://…``, ``postgresql://…``, or an
            already-built :class:`~thrifty.store.Store`.
        namespace: default namespace (tenant) for keys and entries.
        ttl: default time to live in seconds (None: forever).
        namespace_ttl: per-namespace TTLs, overriding ``ttl``.
        prices: the price table used to value what hits save.
        semantic: also answer reworded questions: True, or :class:`SemanticSettings`
            (threshold, embedder, policy, guard, verifier, index folder). Lookups and writes
            that pass the ``request`` take part. No embedder is loaded unless it is on.
        coalesce: :class:`CoalesceSettings` (lease TTL, wait timeout, holder name, shared
            leases) for identical concurrent misses.
        write_behind: True, or :class:`WriteBehindSettings`: async misses return their answer
            before it is stored by a background thread (see ``write_behind.py``).
        limits: :class:`SizeLimits` (max entries, max bytes) for a store opened from a URL.
        protect: :class:`ProtectSettings`: the PII guard (``skip_store`` / ``redact``, a layer
            that decides what of each write may be stored) and encryption at rest (a store
            wrapper sealing payloads and semantic texts). Off: the cache is built as without.

    Raises:
        ConfigError: a bad setting.
        UnknownSchemeError, BackendUnavailableError: when the backend cannot be opened.
    """

    def __init__(
        self,
        url_or_store: str | Store | None = None,
        *,
        namespace: str = "default",
        ttl: float | None = None,
        namespace_ttl: Mapping[str, float] | None = None,
        prices: PriceTable | None = None,
        semantic: bool | SemanticSettings = False,
        coalesce: CoalesceSettings | None = None,
        write_behind: bool | WriteBehindSettings = False,
        limits: SizeLimits | None = None,
        protect: ProtectSettings | None = None,
    ) -> None:
        ttl = parse_ttl(ttl) if ttl is not None else None  # (0, ten years]: ConfigError
        namespace_ttl = {ns: parse_ttl(t) for ns, t in (namespace_ttl or {}).items()}
        if isinstance(url_or_store, Store):
            if limits is not None:
                raise ConfigError("limits apply to a store opened from a URL; set them on it")
            self.store: Store = url_or_store
            self.url = getattr(url_or_store, "url", "")
        else:
            options: dict[str, Any] = limits.store_options() if limits is not None else {}
            self.store = open_store(url_or_store, **options)
            self.url = url_or_store or getattr(self.store, "url", "")
        layers: list[Layer] = []
        semantic_settings = SemanticSettings.of(semantic)
        if protect is not None and protect.active:
            from thrifty.cache.protect import protect_semantic, protect_store

            self.store = protect_store(self.store, protect)
            semantic_settings = protect_semantic(semantic_settings, protect)
        self.namespace = namespace
        self.ttl = ttl
        self.prices = prices or PriceTable()
        coalesce = coalesce or CoalesceSettings()
        self.coalesce_timeout = coalesce.timeout
        self._background = BackgroundJobs(self._background_failed)
        self._counters = Counters(self.store, self._background)
        self._exact = ExactLayer(
            self.store, self._counters, namespace, ttl, namespace_ttl or {}, self.prices
        )
        self._flights = SingleFlight()
        self._leases = Leases(self.store, coalesce, self._counters.fault)
        behind = WriteBehindSettings.of(write_behind)
        self._behind = (
            None
            if behind is None
            else WriteBehind(
                behind,
                self._background,
                self._prepare,
                self._commit,
                self._flights,
                self._leases,
                self._counters.fault,
            )
        )
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._semantic: SemanticLayer | None = None
        self.semantic: SemanticMatcher | None = None
        """The semantic matcher (index, embedder, policy), None when semantic is off."""
        if semantic_settings is not None:
            from thrifty.cache.semantic import SemanticLayer

            self._semantic = SemanticLayer(self.store, self._counters, semantic_settings)
            self.semantic = self._semantic.matcher
        if protect is not None and protect.guards_pii:
            from thrifty.cache.protect import PIILayer

            layers.append(PIILayer(protect, self._exact))  # first: it decides what the next see
        if self._semantic is not None:
            layers.append(self._semantic)
        self._layers: tuple[Layer, ...] = tuple(layers)
        #: Lookups and writes that pass a request do blocking work in a layer (embedding).
        self._layers_block = any(layer.blocking for layer in self._layers)
        #: Drops published to, and applied from, the other replicas on a shared store
        #: (``broadcast.py``; ``?broadcast=off`` on the store's URL turns it off).
        self.broadcast = open_broadcast(self.store, self._exact, self._layers, self._counters.fault)

    # ----------------------------------------------------------------- keys
    def key(
        self, request: Mapping[str, Any], *, kind: str = "chat", namespace: str | None = None
    ) -> str:
        """The canonical key of an OpenAI-shaped request in this cache's namespace."""
        return request_key(request, namespace or self.namespace, kind)

    def ttl_for(self, namespace: str, ttl: float | None = None) -> float | None:
        """Per-entry TTL, else the namespace's, else the cache's default."""
        return self._exact.ttl_for(namespace, ttl)

    # ------------------------------------------------------------ counters
    def flush(self) -> None:
        """Write buffered hit/miss counters to the backend (shared stores then sum replicas)."""
        self._counters.flush()

    def _background_failed(self, exc: BaseException) -> None:
        self._counters.fault("write behind", exc)

    def _safe(self, fn: Callable[..., Any], *args: Any, op: str | None = None) -> bool:
        try:
            fn(*args)
            return True
        except Exception as exc:
            self._counters.fault(op or str(getattr(fn, "__name__", "call")), exc)
            return False

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

        With ``request`` (the request ``key`` was made from), an exact miss is followed by the
        lookups of the further layers (with ``semantic`` on: among entries of the same scope).

        ``build`` turns the decoded payload into the caller's objects (e.g. LangChain
        generations). Its result is reused while the stored bytes stay the same, so callers
        that pass it must treat the value as read-only (as LangChain's own caches do). The
        store is still read on every lookup: expiry and invalidation are never bypassed.
        """
        ns = namespace or self.namespace
        hit = self._exact.lookup(key, ns, build)
        if hit is not None:
            return hit
        return self._after_exact_miss(key, ns, request, kind, build)

    def _after_exact_miss(
        self,
        key: str,
        ns: str,
        request: Mapping[str, Any] | None,
        kind: str,
        build: Callable[[Any], Any] | None,
    ) -> Hit | None:
        """The further layers' lookups (with the request), else the miss counted."""
        if request is not None:
            for layer in self._layers:
                hit = layer.lookup(key, request, kind, ns)
                if hit is not None:
                    if build is not None:
                        hit.value = build(hit.value)
                    return hit
        self._counters.count(ns, misses=1)
        return None

    def get(self, key: str, default: Any = None, *, namespace: str | None = None) -> Any:
        """The cached value under ``key``, or ``default``."""
        hit = self.lookup(key, namespace=namespace)
        return default if hit is None else hit.value

    def set(self, key: str, value: Any, **options: Unpack[StoreOptions]) -> Entry | None:
        """Store ``value`` under ``key``; returns the entry (None if the backend failed, or a
        layer refused it: PII under ``skip_store``).

        ``options``: see :class:`~thrifty.cache.types.StoreOptions`: namespace, ttl,
        latency_ms, the entry fields (tags, model, model_version, user_id, tokens_in,
        tokens_out, cost_usd: computed from the price table when omitted and a model is
        given), ``request`` (the request ``key`` was made from; the further layers then see
        the entry: with ``semantic`` on, it is indexed for semantic lookups) and ``built``
        (``(build, obj)`` where ``obj`` is what ``build`` makes of ``value``; later
        ``lookup(key, build=build)`` calls return ``obj`` itself while the entry is unchanged).
        """
        built = options.pop("built", None)
        entry = self._prepare(key, value, **options)
        if entry is None or not self._commit([entry]):
            return None
        if built is not None:
            self._exact.remember_built(entry, built[0], built[1])
        return entry

    def _prepare(
        self,
        key: str,
        value: Any,
        *,
        request: Mapping[str, Any] | None = None,
        kind: str = "chat",
        **options: Any,
    ) -> Entry | None:
        """The entry to store, admitted and annotated by the layers; None: store nothing."""
        entry = self._exact.make_entry(key, value, **options)
        if not self._layers:
            return entry
        write = Write(entry, request, kind, value)
        for layer in self._layers:
            admitted = layer.admit(write)
            if admitted is None:
                return None
            write = admitted
        entry, request, kind, value = write
        if request is not None:
            for layer in self._layers:
                layer.prepare(entry, request, kind, value)
        return entry

    def _commit(self, entries: list[Entry]) -> bool:
        """Store prepared entries (in one transaction where the backend can), then index them."""
        if not self._safe(self.store.set_many, entries, op="set"):
            return False
        for layer in self._layers:
            layer.commit(entries)
        return True

    def delete(self, key: str) -> bool:
        """Remove one entry."""
        for layer in self._layers:
            layer.delete(key)
        removed = self.store.delete(key)
        if self.broadcast is not None:
            self.broadcast.deleted(key)
        return removed

    def invalidate(self, **fields: Unpack[SelectorFields]) -> int:
        """Remove every entry matching all the given fields; returns how many.

        ``invalidate(tag="doc:42")`` clears every answer built on document 42;
        ``invalidate(model="gpt-4o", model_version="2024-05")`` every answer of that version;
        ``invalidate(user_id="u1")`` every entry of a user.
        """
        selector = Selector(**fields)
        if selector.is_empty():
            raise ConfigError(
                "invalidate() needs at least one of namespace, tag, model, "
                "model_version, user_id; use clear() to drop everything"
            )
        removed = self.store.invalidate(selector)
        for layer in self._layers:
            layer.invalidated(selector)
        if self.broadcast is not None:
            self.broadcast.invalidated(selector)
        return removed

    def clear(self) -> None:
        """Remove every entry and counter."""
        self._counters.clear()
        self._exact.clear()
        self.store.clear()
        for layer in self._layers:
            layer.clear()
        if self.broadcast is not None:
            self.broadcast.cleared()

    def stats(self, namespace: str | None = None) -> CacheStats:
        """Hits, misses, entries, bytes, tokens and dollars saved (summed over replicas)."""
        self.flush()
        try:
            counters = self.store.read_counters(namespace)
            entries, size = self.store.usage(namespace)
        except Exception as exc:
            self._counters.fault("stats", exc)
            counters, entries, size = {}, 0, 0
        return CacheStats(
            hits=int(counters.get("hits", 0)),
            semantic_hits=int(counters.get("semantic_hits", 0)),
            semantic_wrong_hits=int(counters.get("semantic_wrong_hits", 0)),
            misses=int(counters.get("misses", 0)),
            errors=self._counters.errors,
            entries=entries,
            bytes=size,
            tokens_saved=int(counters.get("tokens_saved", 0)),
            usd_saved=float(counters.get("usd_saved", 0.0)),
            latency_saved_ms=float(counters.get("latency_saved_ms", 0.0)),
        )

    def get_or_compute(
        self, key: str, compute: Callable[[], T], **options: Unpack[ComputeOptions]
    ) -> tuple[T, CacheStatus]:
        """The cached value, or ``compute()`` run once for all identical concurrent callers.

        ``options``: see :class:`~thrifty.cache.types.ComputeOptions` (namespace, ttl,
        describe, store, request, kind, on_hit, and entry fields such as tags or user_id).

        Returns:
            (value, status): status is a :class:`CacheStatus` (``"hit"``, ``"semantic_hit"``,
            ``"miss"`` or ``"coalesced"``).
        """
        ns, request, kind = options.get("namespace"), options.get("request"), options.get("kind")
        hit = self.lookup(key, namespace=ns, request=request, kind=kind or "chat")
        if hit is not None:
            return served(hit, options.get("on_hit"))
        call = ComputeCall.of(key, compute, **options)
        flow = compute_flow(call, self._flights, self._leases, self.coalesce_timeout)
        return run(flow, self._perform)

    def _perform(self, op: Op, arg: Any) -> Any:
        """One step of :func:`~thrifty.cache.flow.compute_flow`, by blocking calls."""
        if op is Op.COMPUTE:  # the commonest step first
            return arg.compute()
        if op is Op.WAIT:
            return arg.result(timeout=self.coalesce_timeout)
        if op is Op.LOOKUP:
            return self.lookup(arg.key, namespace=arg.namespace, request=arg.request, kind=arg.kind)
        if op is Op.STORE:
            key, value, options = arg
            return self.set(key, value, **options)
        return self._lease_step(op, arg)

    def _lease_step(self, op: Op, arg: Any) -> Any:
        """The steps that are the same on both faces' threads: leases, peeks, sleeps."""
        if op is Op.TAKE_LEASE:
            return self._leases.take(arg)
        if op is Op.RELEASE:
            return self._leases.release(arg)
        if op is Op.PEEK:
            return self._exact.peek(arg)
        if op is Op.SLEEP:
            return time.sleep(arg)
        raise AssertionError(f"unknown step {op}")

    # ------------------------------------------------------- async face
    def _executor(self) -> ThreadPoolExecutor:
        """This cache's pool for blocking calls (so a slow backend cannot take the threads of
        asyncio's default pool from the application's other work)."""
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                pool = self._pool
                if pool is None:
                    pool = self._pool = ThreadPoolExecutor(
                        STORE_THREADS, thread_name_prefix="thrifty-store"
                    )
        return pool

    async def _offload(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on this cache's pool, in the caller's context."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor(), call)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` off the event loop when the store blocks, else inline."""
        if self.store.blocking:
            return await self._offload(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def alookup(self, key: str, **options: Unpack[LookupOptions]) -> Hit | None:
        """Async :meth:`lookup`."""
        request = options.get("request")
        if request is not None and self._layers_block:
            # A layer's lookup is CPU work (embedding): off the event loop even for memory://.
            # The exact read first, inline where it is cheap: an exact hit needs no thread hop.
            if not self.store.inline_reads:
                return await self._offload(self.lookup, key, **options)
            ns = options.get("namespace") or self.namespace
            build = options.get("build")
            hit = self._exact.lookup(key, ns, build)
            if hit is not None:
                return hit
            kind = options.get("kind") or "chat"
            return await self._offload(self._after_exact_miss, key, ns, request, kind, build)
        if self.store.inline_reads:  # a primary-key read costs less than a thread hop
            return self.lookup(key, **options)
        return await self._call(self.lookup, key, **options)

    async def aget(self, key: str, default: Any = None, *, namespace: str | None = None) -> Any:
        """Async :meth:`get`."""
        return await self._call(self.get, key, default, namespace=namespace)

    async def aset(self, key: str, value: Any, **options: Unpack[StoreOptions]) -> Entry | None:
        """Async :meth:`set`."""
        if options.get("request") is not None and self._layers_block:
            return await self._offload(self.set, key, value, **options)
        return await self._call(self.set, key, value, **options)

    async def adelete(self, key: str) -> bool:
        """Async :meth:`delete`."""
        return await self._call(self.delete, key)

    async def ainvalidate(self, **fields: Unpack[SelectorFields]) -> int:
        """Async :meth:`invalidate`."""
        return await self._call(self.invalidate, **fields)

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        await self._call(self.clear)

    async def astats(self, namespace: str | None = None) -> CacheStats:
        """Async :meth:`stats`."""
        return await self._call(self.stats, namespace)

    async def aget_or_compute(
        self, key: str, compute: Callable[[], Awaitable[T]], **options: Unpack[ComputeOptions]
    ) -> tuple[T, CacheStatus]:
        """:meth:`get_or_compute` for a coroutine function ``compute``; with write-behind on,
        a miss returns before its answer is stored."""
        ns, request, kind = options.get("namespace"), options.get("request"), options.get("kind")
        hit = await self.alookup(key, namespace=ns, request=request, kind=kind or "chat")
        if hit is not None:
            return served(hit, options.get("on_hit"))
        call = ComputeCall.of(key, compute, **options)
        behind = self._behind
        flow = compute_flow(call, self._flights, self._leases, self.coalesce_timeout, behind)
        return await arun(flow, self._aperform)

    async def _aperform(self, op: Op, arg: Any) -> Any:
        """One step of :func:`~thrifty.cache.flow.compute_flow`, by awaits."""
        if op is Op.COMPUTE:  # the commonest step first
            return await arg.compute()
        if op is Op.WAIT:
            # shield: a waiter that is cancelled must not cancel the shared future
            waiter = asyncio.shield(asyncio.wrap_future(arg))
            return await asyncio.wait_for(waiter, self.coalesce_timeout)
        if op is Op.LOOKUP:
            return await self.alookup(
                arg.key, namespace=arg.namespace, request=arg.request, kind=arg.kind
            )
        if op is Op.STORE:
            key, value, options = arg
            return await self.aset(key, value, **options)
        if op is Op.SLEEP:
            return await asyncio.sleep(arg)
        return await self._call(self._lease_step, op, arg)

    def settled(self, key: str) -> Any:
        """The answer an identical call in this process computed and is still storing
        (write-behind), or None: what a lookup finds a moment later (a streamed request
        takes it rather than calling the upstream again)."""
        return self._flights.settled(key)

    async def adrain(self) -> None:
        """Wait for the answers still being stored in the background (``write_behind``)."""
        await self._background.drain()

    def lookup_request(
        self, request: Mapping[str, Any], *, kind: str = "chat", namespace: str | None = None
    ) -> Hit | None:
        """Exact, then (with ``semantic`` on) semantic lookup of an OpenAI-shaped request."""
        ns = namespace or self.namespace
        return self.lookup(
            self.key(request, kind=kind, namespace=ns), namespace=ns, request=request, kind=kind
        )

    def set_request(
        self,
        request: Mapping[str, Any],
        value: Any,
        *,
        kind: str = "chat",
        namespace: str | None = None,
        **options: Any,
    ) -> Entry | None:
        """Store the answer to a request (indexed for semantic lookups when enabled)."""
        ns = namespace or self.namespace
        key = self.key(request, kind=kind, namespace=ns)
        return self.set(key, value, namespace=ns, request=request, kind=kind, **options)

    async def alookup_request(
        self, request: Mapping[str, Any], *, kind: str = "chat", namespace: str | None = None
    ) -> Hit | None:
        """Async :meth:`lookup_request`."""
        if self.store.blocking or self._layers_block:
            return await self._offload(self.lookup_request, request, kind=kind, namespace=namespace)
        return self.lookup_request(request, kind=kind, namespace=namespace)

    async def aset_request(self, request: Mapping[str, Any], value: Any, **kwargs: Any) -> Any:
        """Async :meth:`set_request`."""
        if self.store.blocking or self._layers_block:
            return await self._offload(self.set_request, request, value, **kwargs)
        return self.set_request(request, value, **kwargs)

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Finish the background writes, flush the counters, close the layers and the store."""
        self._background.close()  # the answers still being stored in the background
        if self.broadcast is not None:
            self.broadcast.close()
        self.flush()
        for layer in self._layers:
            layer.close()
        self.store.close()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cache({redact_url(self.url)!r}, namespace={self.namespace!r})"
