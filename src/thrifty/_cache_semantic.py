"""The semantic face of ``thrifty.Cache``: request-aware lookups and writes, feedback.

A mixin so ``cache.py`` keeps the exact cache's path; it reads the cache's ``semantic``
(a :class:`~thrifty.semantic.matcher.SemanticMatcher`, or None when semantic is off),
``store``, ``namespace`` and its counting and fault helpers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from thrifty import codec
from thrifty.entry import Entry
from thrifty.errors import CorruptEntryError

if TYPE_CHECKING:
    from thrifty.cache import Hit
    from thrifty.semantic.matcher import SemanticMatcher

log = logging.getLogger("thrifty.cache")

#: Semantic hits remembered for feedback, and near hits awaiting verification.
REMEMBERED_HITS = 10_000


_remember_lock = threading.Lock()


def _remember(table: OrderedDict[str, Any], key: str, value: Any) -> None:
    with _remember_lock:
        table[key] = value
        table.move_to_end(key)
        while len(table) > REMEMBERED_HITS:
            table.popitem(last=False)


class SemanticCacheMixin:
    """Semantic lookups, request-aware writes and feedback for :class:`thrifty.Cache`."""

    semantic: SemanticMatcher | None
    verifier: Callable[[Any, Any], bool] | None
    namespace: str
    _served: OrderedDict[str, tuple[str, float]]
    _verifying: OrderedDict[str, tuple[str, float, Any]]
    #: Namespaces (or tenants: the part before ``/``) where semantic matching is off.
    semantic_off: frozenset[str] = frozenset()

    if TYPE_CHECKING:
        store: Any

        def _fault(self, operation: str, exc: BaseException) -> None: ...
        def _safe(self, fn: Callable[..., Any], *args: Any, op: str | None = None) -> bool: ...
        def _count(self, namespace: str, **amounts: float) -> None: ...
        def delete(self, key: str) -> bool: ...
        def key(
            self, request: Mapping[str, Any], *, kind: str = ..., namespace: str | None = ...
        ) -> str: ...
        def lookup(self, key: str, **kwargs: Any) -> Hit | None: ...
        def set(self, key: str, value: Any, **kwargs: Any) -> Entry | None: ...

    def set_semantic(self, namespace: str, enabled: bool) -> None:
        """Turn semantic matching on or off for a namespace, or a whole tenant (``tenant``
        covers ``tenant/…``). Off: lookups are exact only and new entries are not indexed."""
        off = set(self.semantic_off)
        if enabled:
            off.discard(namespace)
        else:
            off.add(namespace)
        self.semantic_off = frozenset(off)

    def semantic_enabled(self, namespace: str) -> bool:
        """True when semantic matching applies to ``namespace``."""
        if self.semantic is None:
            return False
        off = self.semantic_off
        return not off or (namespace not in off and namespace.split("/", 1)[0] not in off)

    def _verifier(self) -> Callable[[Any, Any], bool]:
        """The caller's verifier, else: the two answers' texts are equal after normalizing,
        or their embeddings (with this cache's embedder) have cosine ≥ 0.9."""
        if self.verifier is None:
            from thrifty.semantic.thresholds import embedding_match
            from thrifty.semantic.verify import text_verifier

            assert self.semantic is not None
            self.verifier = text_verifier(embedding_match(self.semantic.embedder.embed))
        return self.verifier

    def _semantic_lookup(
        self, key: str, request: Mapping[str, Any], kind: str, ns: str
    ) -> Hit | None:
        assert self.semantic is not None
        if not self.semantic_enabled(ns):
            return None
        try:
            query = self.semantic.query(request, ns, kind)
            match = None if query is None else self.semantic.find(query)
        except Exception as exc:  # fail-open: a broken embedder or index is a miss
            self._fault("semantic lookup", exc)
            return None
        if match is None:
            return None
        try:
            value = codec.decode(match.entry.value)
        except CorruptEntryError as exc:
            log.warning("dropping corrupt cache entry %s: %s", match.entry.key[:16], exc)
            self._safe(self.delete, match.entry.key)
            return None
        if match.verify:  # the policy wants the model asked: a miss, compared when stored
            _remember(self._verifying, key, (match.entry.key, match.similarity, value))
            return None
        entry = match.entry
        hit_id = uuid.uuid4().hex
        _remember(self._served, hit_id, (entry.key, match.similarity))
        _remember(self._served, key, (entry.key, match.similarity))
        self._count(
            ns,
            semantic_hits=1,
            tokens_saved=entry.tokens_in + entry.tokens_out,
            usd_saved=entry.cost_usd,
            latency_saved_ms=entry.latency_ms,
        )
        from thrifty.cache import Hit

        return Hit(value, entry, "semantic_hit", match.similarity, hit_id)

    def lookup_request(
        self, request: Mapping[str, Any], *, kind: str = "chat", namespace: str | None = None
    ) -> Hit | None:
        """Exact, then (with ``semantic=True``) semantic lookup of an OpenAI-shaped request."""
        ns = namespace or self.namespace
        return self.lookup(self.key(request, kind=kind, namespace=ns), namespace=ns,
                           request=request, kind=kind)  # fmt: skip

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

    def feedback(self, ident: str, correct: bool, *, similarity: float | None = None) -> bool:
        """Tell the threshold policy whether a semantic hit was right.

        Args:
            ident: the hit's ``id``, the key of the request it answered, or the served entry's
                key (then ``similarity`` should be given).
        Returns:
            False when the hit is unknown (too old, or not semantic) or semantic is off.
        """
        if self.semantic is None:
            return False
        served = self._served.get(ident)
        if served is None:
            if similarity is None:
                return False
            served = (ident, similarity)
        self.semantic.policy.record(served[0], served[1], correct)
        return True

    def _attach_semantic(
        self, entry: Entry, request: Mapping[str, Any], kind: str, value: Any
    ) -> None:
        assert self.semantic is not None
        if not self.semantic_enabled(entry.namespace):
            return
        try:
            query = self.semantic.query(request, entry.namespace, kind)
            if query is not None:
                self.semantic.attach(entry, query)
        except Exception as exc:  # fail-open: stored, but only for exact lookups
            self._fault("semantic embed", exc)
        with _remember_lock:
            pending = self._verifying.pop(entry.key, None)
        if pending is not None:
            cached_key, similarity, cached_value = pending
            try:
                correct = bool(self._verifier()(cached_value, value))
            except Exception as exc:
                self._fault("semantic verifier", exc)
            else:
                self.semantic.policy.record(cached_key, similarity, correct)

    async def alookup_request(
        self, request: Mapping[str, Any], *, kind: str = "chat", namespace: str | None = None
    ) -> Hit | None:
        if self.store.blocking or self.semantic is not None:
            return await asyncio.to_thread(
                self.lookup_request, request, kind=kind, namespace=namespace
            )
        return self.lookup_request(request, kind=kind, namespace=namespace)

    async def aset_request(self, request: Mapping[str, Any], value: Any, **kwargs: Any) -> Any:
        if self.store.blocking or self.semantic is not None:
            return await asyncio.to_thread(self.set_request, request, value, **kwargs)
        return self.set_request(request, value, **kwargs)

    async def afeedback(self, ident: str, correct: bool, **kwargs: Any) -> bool:
        return self.feedback(ident, correct, **kwargs)
