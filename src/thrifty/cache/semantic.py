"""The semantic layer: answers to reworded questions, thresholds, feedback and verification.

The only part of the cache that knows about semantic matching. The facade consults it through
the small hooks of :class:`~thrifty.cache.types.Layer` after an exact miss and on every write,
delete, invalidation and clear; the matching itself (embedder, index, guards, threshold
policy) is :class:`~thrifty.semantic.matcher.SemanticMatcher`, imported only when a cache turns
semantic on, so ``import thrifty`` stays light.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from thrifty import codec
from thrifty.cache.counters import Counters
from thrifty.cache.settings import SemanticSettings
from thrifty.cache.types import CacheStatus, Hit, Layer
from thrifty.entry import Entry, Selector
from thrifty.errors import CorruptEntryError
from thrifty.semantic.agreement import NeighbourhoodAgreement, Region
from thrifty.store import Store

if TYPE_CHECKING:
    from thrifty.semantic.base import ThresholdPolicy
    from thrifty.semantic.matcher import SemanticMatcher

log = logging.getLogger("thrifty.cache")

#: Semantic hits remembered for feedback, and near hits awaiting verification.
REMEMBERED_HITS = 10_000


class FeedbackOptions(TypedDict, total=False):
    """The options of :meth:`Cache.feedback <thrifty.cache.Cache.feedback>`."""

    similarity: float | None
    """The similarity of the hit, when ``ident`` is the served entry's key."""
    tenant: str | None
    """Count it only if the hit was served in this tenant (``tenant`` or ``tenant/…``)."""


def within(namespace: str | None, tenant: str) -> bool:
    """Whether ``namespace`` is the tenant's own (``tenant``) or one inside it (``tenant/…``)."""
    return namespace is not None and (namespace == tenant or namespace.startswith(tenant + "/"))


class Decision:
    """What the semantic layer decided for a lookup (``X-Thrifty-Semantic-Decision``)."""

    SERVED = "served"
    """A cached answer served at once."""
    VERIFIED = "verified"
    """A hit re-checked: the model answers and its answer is compared with the cached one."""
    NEAR_MISS = "near-miss"
    """Below the entry's bar but near: the model answers (as a miss), compared; if the answers
    agree the new question is linked to the entry."""
    CONFLICT = "conflict"
    """Above the entry's bar, but candidates near the query carry different answers
    (neighbourhood agreement): the model answers (as a miss), compared as a near miss is."""
    MISS = "miss"
    """Nothing near enough."""
    GUARD = "guard:"
    """Prefix: a guard blocked the nearest candidate (``guard:number``, ``guard:negation``…)."""


class SemanticLayer(Layer):
    """Semantic lookups and request-aware writes over one store.

    Args:
        store: the backend (the matcher keeps its vector index beside it).
        counters: where semantic hits are counted and faults reported.
        settings: threshold, embedder, policy, guard, verifier and index folder.
    """

    blocking = True  # lookups embed text: CPU work the event loop must not do

    def __init__(self, store: Store, counters: Counters, settings: SemanticSettings) -> None:
        from thrifty.semantic.matcher import build_matcher

        self._store = store
        self._counters = counters
        agreement = settings.agreement_rule()
        self.matcher: SemanticMatcher = build_matcher(
            store,
            settings.embedder,
            settings.threshold,
            settings.policy,
            settings.guard,
            settings.index,
            agreement=agreement,
        )
        self._verifier = settings.verifier
        # neighbours' short answers compared as checks compare (wherever agreement is on)
        self.matcher.same_answer = lambda cached, other: self.verifier()(cached, other)
        self._lock = threading.Lock()  # guards the two tables below, per cache
        self._served: OrderedDict[str, tuple[str, float, str | None]] = OrderedDict()
        self._verifying: OrderedDict[str, tuple[str, float, Any, str]] = OrderedDict()
        self._decisions: OrderedDict[str, tuple[str, float | None]] = OrderedDict()
        #: Namespaces (or tenants: the part before ``/``) where semantic matching is off.
        self.off: frozenset[str] = frozenset()
        #: Threshold policies of namespaces (or tenants) that do not use the matcher's own.
        self.policies: dict[str, ThresholdPolicy] = {}
        #: Neighbourhood agreement of namespaces (or tenants) that do not use the matcher's own
        #: (None: off there).
        self.agreements: dict[str, NeighbourhoodAgreement | None] = {}

    # ------------------------------------------------------------ switches
    def set_enabled(self, namespace: str, enabled: bool) -> None:
        """Turn matching on or off for a namespace, or a whole tenant."""
        off = set(self.off)
        if enabled:
            off.discard(namespace)
        else:
            off.add(namespace)
        self.off = frozenset(off)

    def set_policy(self, namespace: str, policy: ThresholdPolicy) -> None:
        """Decide hits of a namespace, or a whole tenant, with ``policy``."""
        self.policies = {**self.policies, namespace: policy}

    def policy_for(self, namespace: str) -> ThresholdPolicy:
        """The namespace's policy, else its tenant's, else the matcher's own."""
        return _namespaced(self.policies, namespace, self.matcher.policy)

    def set_agreement(self, namespace: str, rule: NeighbourhoodAgreement | None) -> None:
        """Decide hits of a namespace, or a whole tenant, with its own neighbourhood agreement
        (None: none there)."""
        self.agreements = {**self.agreements, namespace: rule}

    def agreement_for(self, namespace: str) -> NeighbourhoodAgreement | None:
        """The namespace's agreement rule, else its tenant's, else the matcher's own."""
        return _namespaced(self.agreements, namespace, self.matcher.agreement)

    def decision(self, key: str) -> tuple[str, float | None] | None:
        """What the last semantic lookup of request ``key`` decided, with the similarity of the
        candidate that decided (read once: the gateway's headers for a miss)."""
        with self._lock:
            return self._decisions.pop(key, None)

    def enabled(self, namespace: str) -> bool:
        """True when semantic matching applies to ``namespace``."""
        off = self.off
        return not off or (namespace not in off and namespace.split("/", 1)[0] not in off)

    # ------------------------------------------------------------ layer hooks
    def lookup(self, key: str, request: Mapping[str, Any], kind: str, namespace: str) -> Hit | None:
        if not self.enabled(namespace):
            return None
        blocked: list[str] = []
        policy = self.policy_for(namespace)
        try:
            query = self.matcher.query(request, namespace, kind)
            match = (
                None
                if query is None
                else self.matcher.find(query, policy, blocked, self.agreement_for(namespace))
            )
        except Exception as exc:  # fail-open: a broken embedder or index is a miss
            self._counters.fault("semantic lookup", exc)
            return None
        if match is None:
            if query is not None:
                why = Decision.GUARD + blocked[0] if blocked else Decision.MISS
                self._remember(self._decisions, key, (why, None))
            return None
        entry = match.entry
        try:
            value = codec.decode(entry.value)
        except CorruptEntryError as exc:
            log.warning("dropping corrupt cache entry %s: %s", entry.key[:16], exc)
            self._drop(entry.key)
            return None
        if match.verify:  # the policy wants the model asked: a miss, compared when stored
            self._remember(self._verifying, key, (entry.key, match.similarity, value, namespace))
            near = policy.should_hit(entry.key, match.similarity)
            why = Decision.VERIFIED if near else Decision.NEAR_MISS
            if near and match.region is Region.CONFLICT:
                why = Decision.CONFLICT
            self._remember(self._decisions, key, (why, match.similarity))
            return None
        # Unguessable (128 random bits), and remembered with the namespace it was served in:
        # feedback from another tenant, with this id or with the request's key, is refused.
        hit_id = secrets.token_urlsafe(16)
        self._remember(self._served, hit_id, (entry.key, match.similarity, namespace))
        self._remember(self._served, key, (entry.key, match.similarity, namespace))
        self._counters.count(
            namespace,
            semantic_hits=1,
            tokens_saved=entry.tokens_in + entry.tokens_out,
            usd_saved=entry.cost_usd,
            latency_saved_ms=entry.latency_ms,
        )
        return Hit(value, entry, CacheStatus.SEMANTIC_HIT, match.similarity, hit_id)

    def prepare(self, entry: Entry, request: Mapping[str, Any], kind: str, value: Any) -> None:
        """Attach the entry's embedding record; settle a verification that waited for it."""
        if not self.enabled(entry.namespace):
            return
        try:
            query = self.matcher.query(request, entry.namespace, kind)
            if query is not None:
                self.matcher.attach(entry, query)
        except Exception as exc:  # fail-open: stored, but only for exact lookups
            self._counters.fault("semantic embed", exc)
        with self._lock:
            pending = self._verifying.pop(entry.key, None)
        if pending is not None:
            cached_key, similarity, cached_value, namespace = pending
            try:
                correct = bool(self.verifier()(cached_value, value))
            except Exception as exc:
                self._counters.fault("semantic verifier", exc)
            else:
                policy = self.policy_for(namespace)
                policy.record(cached_key, similarity, correct)
                if correct and entry.key != cached_key:  # its paraphrases may hit it now
                    policy.link(entry.key, cached_key)

    def commit(self, entries: list[Entry]) -> None:
        for entry in entries:
            if entry.semantic is not None:
                self._guarded("semantic index", self.matcher.indexed, entry)

    def delete(self, key: str) -> None:
        self.matcher.forget(key)
        for policy in self.policies.values():
            policy.forget(key)

    def invalidated(self, selector: Selector) -> None:
        # the index forgets them (and a purged user's text) now
        self._guarded("semantic invalidate", self.matcher.invalidated, selector)

    def clear(self) -> None:
        self.matcher.clear()

    def dropped_elsewhere(self, key: str | None, selector: Selector | None) -> None:
        self.matcher.dropped_elsewhere(key, selector)
        if key is not None:
            for policy in self.policies.values():
                policy.forget(key)

    def close(self) -> None:
        self.matcher.close()

    # ------------------------------------------------------------ feedback
    def feedback(
        self,
        ident: str,
        correct: bool,
        similarity: float | None = None,
        tenant: str | None = None,
        namespace: str | None = None,
    ) -> bool:
        """Tell the threshold policy whether a hit was right (it moves that entry's bar, in
        either policy; a wrong one is counted). False when the hit is unknown, or when
        ``tenant`` is given and the hit was served outside it (``tenant``, ``tenant/…``)."""
        served = self._served.get(ident)
        if served is None:
            if similarity is None:
                return False
            if tenant is not None:  # an entry's key: it must be one of the tenant's entries
                entry = self._store.get(ident)
                if entry is None or not within(entry.namespace, tenant):
                    return False
            served = (ident, similarity, namespace)
        elif tenant is not None and not within(served[2], tenant):
            return False
        key, sim, ns = served
        self.policy_for(ns or "").record(key, sim, correct)
        if not correct and ns:
            self._counters.count(ns, semantic_wrong_hits=1)
        return True

    def verifier(self) -> Callable[[Any, Any], bool]:
        """The caller's verifier, else: the two answers' texts are equal after normalizing,
        or their embeddings (with this cache's embedder) have cosine ≥ 0.9."""
        if self._verifier is None:
            from thrifty.semantic.thresholds import embedding_match
            from thrifty.semantic.verify import text_verifier

            self._verifier = text_verifier(embedding_match(self.matcher.embedder.embed))
        return self._verifier

    # ------------------------------------------------------------ helpers
    def _remember(self, table: OrderedDict[str, Any], key: str, value: Any) -> None:
        with self._lock:
            table[key] = value
            table.move_to_end(key)
            while len(table) > REMEMBERED_HITS:
                table.popitem(last=False)

    def _drop(self, key: str) -> None:
        self.matcher.forget(key)
        self._guarded("delete", self._store.delete, key)

    def _guarded(self, operation: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            self._counters.fault(operation, exc)


T = TypeVar("T")


def _namespaced(table: Mapping[str, T], namespace: str, default: T) -> T:
    """A namespace's own setting in ``table``, else its tenant's (the part before ``/``), else
    ``default``."""
    if table:
        for name in (namespace, namespace.split("/", 1)[0]):
            if name in table:
                return table[name]
    return default
