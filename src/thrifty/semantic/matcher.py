"""``SemanticMatcher``: the semantic half of ``thrifty.Cache(semantic=True)``.

A lookup embeds the last user message, searches the request's scope in the index, and serves the
nearest candidate that (1) the threshold policy accepts at its similarity, (2) still lives in the
store — so deletes, TTL expiry, eviction and invalidation are honoured even when the index still
holds the vector — (3) no guard blocks, and (4) the learned pair scorer does not doubt (cosine
finds candidates; the guards and the scorer decide on more evidence than one cosine), and, when
``agreement`` is on, (5) the other candidates near the query do not carry a different answer
(``agreement.py``: a query between two answers is not served; one among agreeing entries may be
served from a lower bar). A write
stores the scope, text and vector in the entry (``Entry.semantic``) and adds them to the index, so
the index can always be rebuilt from the store.

The index lives beside the store: a folder next to a SQLite file, a per-URL folder in the user's
cache directory for Redis and PostgreSQL (each process keeps its own copy and catches up with
entries other replicas wrote every ``sync_interval`` seconds; what they delete or invalidate
arrives at once, ``cache/broadcast.py``), memory only for ``memory://``, or a vector engine
every replica shares (``engine_index.py``).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thrifty import codec
from thrifty.entry import Entry, Selector
from thrifty.errors import CorruptEntryError
from thrifty.semantic.agreement import NeighbourhoodAgreement, Region
from thrifty.semantic.base import Candidate, Embedder, Guard, ThresholdPolicy
from thrifty.semantic.engine_index import is_engine_url, open_engine_index
from thrifty.semantic.index import ScopedIndex
from thrifty.semantic.pair_scorer import PairScorer
from thrifty.semantic.record import SemanticRecord, decode_record, encode_record
from thrifty.semantic.scope import SemanticQuery, semantic_query
from thrifty.semantic.verify import answer_text
from thrifty.store.base import Store

log = logging.getLogger("thrifty.semantic")
#: Entries created this long before the last sync are read again (clock skew between replicas,
#: writes that committed after they were stamped).
SYNC_OVERLAP_SECONDS = 10.0
CACHE_DIR_ENV = "THRIFTY_CACHE_DIR"
#: Entries read from the store per bulk insert during a rebuild or catch-up.
SCAN_BATCH = 2048


class _MatcherOwn:
    """The matcher's own setting: a default that None cannot stand for (None turns agreement
    off), like httpx's ``USE_CLIENT_DEFAULT``."""


OWN = _MatcherOwn()


@dataclass(frozen=True, slots=True)
class SemanticMatch:
    """A stored entry that may answer the query."""

    entry: Entry
    candidate: Candidate
    query: SemanticQuery
    verify: bool = False
    """True when the policy wants the model asked anyway, to learn whether the hit was right."""
    region: Region | None = None
    """What the neighbourhood said (None: agreement off, or not consulted)."""

    @property
    def similarity(self) -> float:
        return self.candidate.similarity


def default_index_path(store: Store) -> Path | None:
    """Where a store's semantic index lives: beside a SQLite file, in the user's cache folder
    for shared network stores, nowhere (memory only) for ``memory://``."""
    path = getattr(store, "path", None)
    if isinstance(path, str) and path and path != ":memory:":
        return Path(path + ".semantic")
    url = getattr(store, "url", "")
    if not store.shared or not url:
        return None
    base = Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "thrifty")
    return base / "semantic" / hashlib.sha256(url.encode()).hexdigest()[:16]


class SemanticMatcher:
    """Embeds, indexes, searches and re-checks; see the module docstring.

    Args:
        store: the cache's store (candidates are re-read from it).
        embedder: turns questions into vectors.
        policy: decides whether a similarity is enough for an entry.
        guard: blocks hits whose texts differ in numbers, dates, negation, names (optional).
        scorer: a learned judge of the pair (``pair_scorer.py``) consulted after the guards: a
            candidate it doubts is not served (optional; fitted for one embedder).
        index_path: folder for the index ("auto": :func:`default_index_path`; None: memory).
        k: candidates examined per lookup.
        sync_interval: seconds between catch-ups with a shared store (0: every lookup).
        save_interval: seconds between saves of a changed index (it is also saved on close).
        background: rebuild and catch up in a worker thread (False: inside the lookup).
        agreement: neighbourhood agreement (``agreement.py``; None: off, the default).
        same_answer: ``(cached_value, other_cached_value) -> bool``, the answer identity
            agreement uses besides entries a verification linked (default: the answer texts
            are equal after normalising; ``SemanticLayer`` passes its verifier), asked about
            short answers only (``NeighbourhoodAgreement.label_words``).
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        policy: ThresholdPolicy,
        *,
        guard: Guard | None = None,
        scorer: PairScorer | None = None,
        index_path: str | os.PathLike[str] | None = "auto",
        k: int = 4,
        sync_interval: float = 2.0,
        save_interval: float = 300.0,
        background: bool = True,
        agreement: NeighbourhoodAgreement | None = None,
        same_answer: Callable[[Any, Any], bool] | None = None,
    ) -> None:
        self.store = store
        self.agreement = agreement
        self.same_answer = same_answer
        self.embedder = embedder
        self.policy = policy
        self.guard = guard
        self.scorer = scorer
        self.k = k
        self.sync_interval = sync_interval
        self.save_interval = save_interval
        self.background = background
        self._worker: threading.Thread | None = None
        if is_engine_url(index_path):  # a shared engine: no local copy, no catch-up
            assert isinstance(index_path, str)
            self.index: Any = open_engine_index(index_path, embedder.dim, model=embedder.name)
            path = None
        else:
            path = default_index_path(store) if index_path == "auto" else index_path
            self.index = ScopedIndex(embedder.dim, model=embedder.name, path=path)
        # what a learning policy (VerifiedThreshold) learned lives in a file beside the index
        self._policy_path = None if path is None else Path(str(path) + ".thresholds.json")
        restore = getattr(policy, "restore", None)
        if self._policy_path is not None and callable(restore):
            try:
                restore(self._policy_path)
            except (ValueError, OSError) as exc:  # ConfigError is a ValueError
                log.warning("ignoring threshold state %s: %s", self._policy_path, exc)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._last_sync = 0.0
        self._last_save = time.monotonic()
        self._scan_failed = False

    # ------------------------------------------------------------- queries
    def query(
        self, request: Mapping[str, Any], namespace: str, kind: str = "chat"
    ) -> SemanticQuery | None:
        """The scope and text of a request, or None when it cannot be matched semantically."""
        try:
            return semantic_query(request, namespace, kind)
        except (TypeError, ValueError):
            return None

    def find(
        self,
        query: SemanticQuery,
        policy: ThresholdPolicy | None = None,
        blocked: list[str] | None = None,
        agreement: NeighbourhoodAgreement | _MatcherOwn | None = OWN,
    ) -> SemanticMatch | None:
        """The nearest live candidate that no guard blocks decides: served if the policy accepts
        its similarity; else offered for a check against the model (``verify=True``: how a
        verified policy learns an entry's threshold) if the policy wants one; else a miss.

        A farther candidate is not served in place of a nearer one the policy refuses: with
        per-entry thresholds that would pick the answer of a less similar question exactly
        when the nearest one is in doubt (benchmarks/RESULTS.md, banking77 stream). A candidate
        the pair scorer doubts is passed over like a guarded one, though still offered for a
        check when the policy wants one (so a verified policy keeps learning).

        With ``agreement`` the other live, guard-passed candidates near the deciding one are its
        neighbourhood: one with another answer refuses a hit the policy allows (offered for a
        check instead), agreeing ones serve it from ``agree_bar`` where the policy refuses.

        ``policy`` and ``agreement`` (None: off) replace the matcher's own for this lookup (one
        per namespace); the reasons of guards that blocked a nearer candidate are appended to
        ``blocked``."""
        self._prepare()
        policy = self.policy if policy is None else policy  # (a policy may have a length)
        vector = self.embedder.embed_one(query.text)
        if isinstance(agreement, _MatcherOwn):
            agreement = self.agreement
        k = self.k if agreement is None else max(self.k, agreement.k)
        candidates = self.index.search(query.scope, vector, k)
        live: list[tuple[Candidate, Entry]] = []
        if agreement is not None:
            # The neighbourhood is what the store and the guards pass above the floor, so those
            # candidates are read first; the rest are read when the decision reaches them.
            near = [c for c in candidates if c.similarity >= agreement.floor]
            live = [(c, e) for c in near if (e := self._live(c, query, blocked)) is not None]
            candidates = candidates[len(near) :]
        later = ((c, self._live(c, query, blocked)) for c in candidates)
        answers: dict[str, tuple[Any, str]] = {}
        for candidate, entry in itertools.chain(live, later):
            if entry is None:
                continue
            key, sim = candidate.key, candidate.similarity
            own = policy.should_hit(key, sim)
            hit, region = own, None
            if agreement is not None and (
                own or (agreement.agree_bar is not None and sim >= agreement.agree_bar)
            ):
                low = agreement.low(sim)
                neighbours = [
                    (c.similarity, self._agree(agreement, policy, entry, e, answers))
                    for c, e in live
                    if c is not candidate and c.similarity >= low
                ]
                region = agreement.region(sim, neighbours)
                hit = agreement.serves(region, sim, own)
            trusted = not hit or self._trusted(query, candidate)
            if hit and trusted:
                verify = own and policy.wants_verification(key, sim)
                return SemanticMatch(entry, candidate, query, verify, region)
            # a hit agreement refused is offered for a check, so the model answers and a
            # learning policy learns; so is any candidate the policy wants checked
            if (own and not hit) or policy.wants_verification(key, sim):
                return SemanticMatch(entry, candidate, query, True, region)
            if not trusted:
                continue
            return None
        return None

    def _agree(
        self,
        agreement: NeighbourhoodAgreement,
        policy: ThresholdPolicy,
        first: Entry,
        second: Entry,
        answers: dict[str, tuple[Any, str]],
    ) -> bool | None:
        """Whether two entries answer alike: True when linked by a verification that agreed,
        else as :meth:`NeighbourhoodAgreement.compared` reads their answer texts (short ones
        compared by ``same_answer`` when given). An answer that cannot be read counts as
        different (a conflict refuses, it never serves)."""
        linked = getattr(policy, "linked", None)
        if callable(linked) and linked(first.key, second.key):
            return True
        try:
            (a, a_text), (b, b_text) = (self._answer(e, answers) for e in (first, second))
            check = self.same_answer
            same = None if check is None else lambda: check(a, b)
            return agreement.compared(a_text, b_text, same)
        except Exception as exc:  # a broken value or comparer: treated as disagreement
            log.debug("answer comparison failed: %s", exc)
            return False

    @staticmethod
    def _answer(entry: Entry, answers: dict[str, tuple[Any, str]]) -> tuple[Any, str]:
        """The entry's decoded answer and its text, read once per lookup (the deciding entry
        meets every neighbour)."""
        if entry.key not in answers:
            value = codec.decode(entry.value)
            answers[entry.key] = value, answer_text(value)
        return answers[entry.key]

    def _trusted(self, query: SemanticQuery, candidate: Candidate) -> bool:
        """True unless the pair scorer judges the candidate's question a different one."""
        if self.scorer is None:
            return True
        if self.scorer.accepts(query.text, candidate.text, candidate.similarity):
            return True
        log.debug("pair scorer passed over a semantic hit at %.3f", candidate.similarity)
        return False

    def _live(
        self, candidate: Candidate, query: SemanticQuery, blocked: list[str] | None = None
    ) -> Entry | None:
        """The candidate's entry if it still lives in the store and no guard blocks it."""
        entry = self.store.get(candidate.key)
        if entry is None:  # deleted, expired, evicted or invalidated: never served
            self.index.remove(candidate.key)
            self.policy.forget(candidate.key)
            return None
        if self.guard is not None:
            reason = self.guard.blocks(query.text, candidate.text)
            if reason is not None:
                log.debug("guard blocked a semantic hit (%s)", reason)
                if blocked is not None:
                    blocked.append(reason)
                return None
        return entry

    # -------------------------------------------------------------- writes
    def attach(self, entry: Entry, query: SemanticQuery) -> Entry:
        """Put the semantic record (scope, text, vector) into ``entry`` before it is stored."""
        vector = self.embedder.embed_one(query.text)
        entry.semantic = encode_record(query.scope, query.text, self.embedder.name, vector)
        return entry

    def indexed(self, entry: Entry) -> None:
        """Add a stored entry's record to the index (after the store accepted it)."""
        if entry.semantic is None:
            return
        self._prepare()
        self._add(entry)
        self._maybe_save()

    def _add(self, entry: Entry) -> bool:
        record = self._record(entry)
        if record is None:
            return False
        self.index.add(entry.key, record.scope, record.vector, record.text, entry)
        return True

    def _record(self, entry: Entry) -> SemanticRecord | None:
        try:
            record = decode_record(entry.semantic or b"")
        except CorruptEntryError as exc:
            log.warning("skipping entry %s: %s", entry.key[:16], exc)
            return None
        if record.model != self.embedder.name or record.vector.shape[0] != self.embedder.dim:
            return None  # written with another embedder: its vector is not comparable
        return record

    def forget(self, key: str) -> None:
        """Drop an entry from the index (after a delete)."""
        self.index.remove(key)
        self.policy.forget(key)

    def invalidated(self, selector: Selector) -> int:
        """Drop what an invalidation removed from the store; a user purge is saved at once,
        so the user's questions leave the index file too. Returns how many rows went."""
        gone = self.index.remove_matching(selector)
        for key in gone:
            self.policy.forget(key)
        if gone and selector.user_id is not None:
            self.save()
        return len(gone)

    def clear(self) -> None:
        self.index.clear()
        self.index.synced_at = time.time()

    def dropped_elsewhere(self, key: str | None, selector: Selector | None) -> None:
        """Another replica removed entries from the store (``key``, ``selector``, or all of
        them when both are None; also sent when messages may have been missed): drop this
        process's copies. A shared engine index was already updated by that replica; a local
        one forgets the rows, or is rebuilt from the store in the background."""
        local = not getattr(self.index, "shared", False)
        if key is not None:
            if local:
                self.index.remove(key)
            self.policy.forget(key)
        elif selector is not None:
            if local:
                self.invalidated(selector)
        elif local:
            self._ready = True  # a saved index file is as stale as the memory: not loaded
            self._run(self.rebuild)

    # ------------------------------------------------------ index upkeep
    def _prepare(self) -> None:
        """Load or rebuild the index once, then catch up with a shared store now and then.

        With ``background`` (the default) a rebuild and the catch-ups run in a worker thread:
        lookups meanwhile search what the index already holds (a miss at worst), and no
        request waits for minutes of HNSW building or for a catch-up query.
        """
        if not self._ready:
            rebuild = False
            with self._ready_lock:
                if not self._ready:
                    rebuild = not self.index.load()
                    self._ready = True
            if rebuild:
                self._run(self.rebuild)
                return
        if getattr(self.index, "shared", False):
            return  # every replica writes to the engine itself: there is nothing to catch up
        if self.store.shared and time.monotonic() - self._last_sync >= self.sync_interval:
            self._last_sync = time.monotonic()
            self._run(self.sync)

    def _run(self, job: Callable[[], int]) -> None:
        if not self.background:
            job()
            return
        with self._ready_lock:
            if self._worker is not None and self._worker.is_alive():
                return  # one upkeep job at a time; the next lookup asks again
            self._worker = threading.Thread(
                target=self._guarded, args=(job,), name="thrifty-semantic-index", daemon=True
            )
            self._worker.start()

    def _guarded(self, job: Callable[[], int]) -> None:
        try:
            job()
        except Exception as exc:  # fail-open: the index only misses more
            log.warning("semantic index upkeep failed: %s", exc)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background rebuild or catch-up to finish (tests, benchmarks, shutdown)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def rebuild(self) -> int:
        """Refill the index from every semantic entry in the store; returns how many."""
        self.index.clear()
        started = time.time()
        self._scan_failed = False
        added = self._scan(None)
        self.index.synced_at = None if self._scan_failed else started
        self._last_sync = time.monotonic()
        if added:
            log.info("rebuilt the semantic index from the store: %d entries", added)
            self.save()
        return added

    def sync(self) -> int:
        """Add entries other processes stored since the last sync; returns how many."""
        started = time.time()
        since = None if self.index.synced_at is None else self.index.synced_at
        if since is not None:
            since -= SYNC_OVERLAP_SECONDS
        self._scan_failed = False
        added = self._scan(since)
        self.index.synced_at = self.index.synced_at if self._scan_failed else started
        self._last_sync = time.monotonic()
        return added

    def _scan(self, since: float | None) -> int:
        added = 0
        batch: list[SemanticRecord] = []
        entries: list[Entry] = []
        try:
            for entry in self.store.iter_entries(since=since):
                record = None if entry.key in self.index else self._record(entry)
                if record is not None:
                    batch.append(record)
                    entries.append(entry)
                if len(batch) >= SCAN_BATCH:
                    added += self._add_batch(entries, batch)
                    batch, entries = [], []
        except NotImplementedError:
            pass  # this backend cannot list: the index keeps only what this process wrote
        except Exception as exc:  # fail-open: a stale index only misses
            log.warning("semantic index could not read the store: %s", exc)
            self._scan_failed = True  # the next sync reads the whole store again
        return added + self._add_batch(entries, batch)

    def _add_batch(self, entries: list[Entry], records: list[SemanticRecord]) -> int:
        if records:
            self.index.add_many(
                [e.key for e in entries],
                [r.scope for r in records],
                np.stack([r.vector for r in records]),
                [r.text for r in records],
                entries,
            )
        return len(records)

    def _maybe_save(self) -> None:
        if self.index.dirty and time.monotonic() - self._last_save >= self.save_interval:
            self.save()

    def save(self) -> None:
        """Persist the index (no-op in memory); failures are logged, not raised."""
        self._last_save = time.monotonic()
        try:
            self.index.save()
        except OSError as exc:
            log.warning("could not save the semantic index to %s: %s", self.index.path, exc)
        self._save_policy()

    def _save_policy(self) -> None:
        save = getattr(self.policy, "save", None)
        if self._policy_path is None or not callable(save):
            return
        try:
            save(self._policy_path)
        except OSError as exc:
            log.warning("could not save the threshold state to %s: %s", self._policy_path, exc)

    def close(self) -> None:
        # A long rebuild is not waited for: what it added so far is saved, and the next start
        # reads the rest from the store (a partial index is saved without a sync time).
        self.wait(timeout=5.0)
        if self._ready and self.index.dirty:
            self.save()
        else:
            self._save_policy()
        close_index = getattr(self.index, "close", None)
        if callable(close_index):  # an engine's client connection
            close_index()

    def embed(self, text: str) -> np.ndarray:
        return self.embedder.embed_one(text)


def build_matcher(
    store: Store,
    embedder: Embedder | str | None = None,
    threshold: float | None = None,
    policy: ThresholdPolicy | None = None,
    guard: Guard | bool | None = None,
    index_path: str | os.PathLike[str] | None = "auto",
    scorer: PairScorer | bool | None = None,
    agreement: NeighbourhoodAgreement | None = None,
) -> SemanticMatcher:
    """The matcher ``thrifty.Cache(semantic=True, ...)`` uses, from its arguments.

    ``guard``: None (or True) for every guard of ``guards.py``, False for none.
    ``scorer``: None for the shipped pair scorer when the embedder is the one it was fitted
    for (and guards are on), True to insist on it, False for none, or a :class:`PairScorer`.
    ``agreement``: neighbourhood agreement (``agreement.py``), None (the default) for none.

    Raises:
        ConfigError: an unknown embedder name, or both ``threshold`` and ``policy``.
        ProviderUnavailableError: the local embedder's packages are not installed.
    """
    from thrifty.errors import ConfigError
    from thrifty.semantic.embedder import make_embedder
    from thrifty.semantic.policy import DEFAULT_THRESHOLD, FixedThreshold

    if policy is not None and threshold is not None:
        raise ConfigError("give either threshold (a fixed bar) or policy, not both")
    if policy is None:
        policy = FixedThreshold(DEFAULT_THRESHOLD if threshold is None else threshold)
    if guard is None or guard is True:  # on by default: the default bar assumes guards
        from thrifty.semantic.guards import Guards

        guard = Guards()
    model = make_embedder(embedder)
    if scorer is None or scorer is True:
        shipped = PairScorer.default()
        fits = shipped.model == model.name and bool(guard)
        scorer = shipped if scorer is True or fits else None
    return SemanticMatcher(
        store,
        model,
        policy,
        guard=guard or None,
        scorer=scorer or None,
        index_path=index_path,
        agreement=agreement,
    )
