"""The options of ``thrifty.Cache``, as small frozen settings objects instead of flags.

Each feature that needs more than on/off takes one object (``semantic=SemanticSettings(…)``,
``coalesce=CoalesceSettings(…)``…), validated when it is made, so a bad value fails where it is
written rather than on the first miss, and ``Cache.__init__`` stays a short list of parts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from thrifty.errors import ConfigError


def _positive(name: str, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or value <= 0):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


S = TypeVar("S")


def settings_of(cls: type[S], name: str, value: bool | S | None) -> S | None:
    """A feature's settings from ``True`` (the defaults), ``False``/None (off) or settings."""
    if value is None or value is False:
        return None
    if value is True:
        return cls()
    if isinstance(value, cls):
        return value
    raise ConfigError(f"{name} must be a bool or {cls.__name__}, got {value!r}")


@dataclass(frozen=True, slots=True)
class SemanticSettings:
    """Answer reworded questions too (``thrifty.semantic``); ``semantic=True`` is the default.

    Args:
        threshold: cosine similarity for a hit (a fixed bar; default that of
            :class:`~thrifty.semantic.policy.FixedThreshold`).
        embedder: an :class:`~thrifty.semantic.Embedder` or a name (``"minilm"``, the default;
            ``"openai"``; ``"hashing"``).
        policy: a :class:`~thrifty.semantic.ThresholdPolicy` (instead of ``threshold``).
        guard: a :class:`~thrifty.semantic.Guard` that can block a hit; None for every guard
            of ``thrifty.semantic.guards``, False for none.
        verifier: ``(cached_value, fresh_value) -> bool``; when the policy asks to verify a
            near hit, the fresh answer is computed, compared and fed back to the policy
            (default: the answers' texts match, or their embeddings are close).
        index: folder of the vector index (``"auto"``: beside the store; None: memory only), or
            the URL of a vector engine every replica shares (``milvus-lite:///index.db``,
            ``milvus://host:19530``; see :mod:`thrifty.semantic.engine_index`).
        agreement: neighbourhood agreement: True (the default) for
            :class:`~thrifty.semantic.agreement.NeighbourhoodAgreement`'s default rule, a rule of
            your own, or None / False for none. A query whose near candidates carry different
            short answers is not served (checked instead); one among two or more agreeing
            entries may be served from a lower bar. Short answers are compared with
            ``verifier``; free-text answers agree only when equal and never conflict, so for a
            chat cache it changes little (benchmarks/RESULTS.md, "Neighbourhood agreement").

    Raises:
        ConfigError: both ``threshold`` and ``policy``, or a threshold outside [-1, 1].
    """

    threshold: float | None = None
    embedder: Any = None
    policy: Any = None
    guard: Any = None
    verifier: Callable[[Any, Any], bool] | None = None
    index: str | os.PathLike[str] | None = "auto"
    agreement: Any = True

    def __post_init__(self) -> None:
        if self.threshold is not None and self.policy is not None:
            raise ConfigError("give either threshold (a fixed bar) or policy, not both")
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(
                f"threshold must be a cosine similarity in [-1, 1], got {self.threshold!r}"
            )
        if not (self.agreement is None or isinstance(self.agreement, bool)):
            self.agreement_rule()  # a rule of the caller's, or a ConfigError here

    @classmethod
    def of(cls, value: bool | SemanticSettings | None) -> SemanticSettings | None:
        """The settings ``Cache(semantic=value)`` means: None when off."""
        return settings_of(cls, "semantic", value)

    def agreement_rule(self) -> Any:
        """The rule ``agreement`` means (:func:`agreement_of`)."""
        return agreement_of(self.agreement)


def agreement_of(value: Any) -> Any:
    """The :class:`~thrifty.semantic.agreement.NeighbourhoodAgreement` an ``agreement`` option
    means: True for the default rule, False / None for none (None), or a rule. Imported here,
    not at module level: ``thrifty.semantic`` loads numpy.

    Raises:
        ConfigError: neither a bool, None nor a rule.
    """
    from thrifty.semantic.agreement import NeighbourhoodAgreement

    return settings_of(NeighbourhoodAgreement, "agreement", value)


@dataclass(frozen=True, slots=True)
class CoalesceSettings:
    """How identical concurrent misses share one computation.

    Args:
        lease_ttl: seconds a cross-process lease lives (a crashed holder blocks the others at
            most this long).
        timeout: seconds a caller waits for an identical in-flight request before failing with
            :class:`~thrifty.errors.CoalesceTimeoutError`.
        holder: the name leases are taken under (default: random per cache). A batch job passes
            a stable one, so that its run resumed after a crash re-takes the leases the crashed
            run left instead of waiting ``lease_ttl`` for them.
        shared_leases: elect one computing process per key through leases in the store
            (default None: when the store is shared). A lone process on a SQLite file passes
            False: each lease is a write transaction on the miss path, and nobody would wait.
    """

    lease_ttl: float = 60.0
    timeout: float = 300.0
    holder: str | None = None
    shared_leases: bool | None = None

    def __post_init__(self) -> None:
        _positive("lease_ttl", self.lease_ttl)
        _positive("timeout", self.timeout)
        if self.holder is not None and not self.holder:
            raise ConfigError("holder must be a non-empty name or None")


@dataclass(frozen=True, slots=True)
class WriteBehindSettings:
    """Async misses answer before their store write; a background thread stores the answers.

    Identical requests meanwhile are coalesced onto the answer; ``close()`` (or ``await
    adrain()``) finishes the pending writes. A gateway saves the store write's latency so.

    Args:
        limit: answers the queue may hold; past it, misses store before answering (the store
            cannot keep up, and memory must not grow without bound).
        batch: most queued answers stored in one transaction.
    """

    limit: int = 10_000
    batch: int = 256

    def __post_init__(self) -> None:
        _positive("limit", self.limit)
        _positive("batch", self.batch)

    @classmethod
    def of(cls, value: bool | WriteBehindSettings | None) -> WriteBehindSettings | None:
        """The settings ``Cache(write_behind=value)`` means: None when off."""
        return settings_of(cls, "write_behind", value)


@dataclass(frozen=True, slots=True)
class SizeLimits:
    """Eviction limits the backend enforces (least recently used first); None: unbounded."""

    max_entries: int | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        _positive("max_entries", self.max_entries)
        _positive("max_bytes", self.max_bytes)

    def store_options(self) -> dict[str, int]:
        """The keyword arguments :func:`~thrifty.store.open_store` takes for these limits."""
        return {
            name: value
            for name, value in (("max_entries", self.max_entries), ("max_bytes", self.max_bytes))
            if value is not None
        }


@dataclass(frozen=True, slots=True)
class ProtectSettings:
    """Data protection of what the cache stores (``thrifty.safety``; needs the ``safety`` extra).

    ``pii``: ``off``; ``skip_store`` (an exchange whose prompt or answer holds personal data is
    answered and never stored, exact or semantic); ``redact`` (the stored copy holds
    placeholders such as ``[EMAIL]``). ``pii_custom``: extra patterns, name -> regex.
    ``encryption_key``: ``SECRET`` or ``ID:SECRET`` (32 bytes as hex or base64; resolve
    ``os.environ/NAME`` first); payloads and the semantic record's text are then sealed with
    AES-GCM and user ids hashed where backends file entries. ``old_keys``: keys of earlier
    rotations, which still open the entries they sealed.
    """

    pii: str = "off"
    pii_custom: Mapping[str, str] | None = None
    encryption_key: str | None = None
    old_keys: tuple[str, ...] = ()
    pii_namespaces: Mapping[str, str] | None = None
    """``pii`` per namespace, overriding the default: ``tenant`` (covers ``tenant/…``) or
    ``tenant/namespace`` -> mode; the most specific name wins. A call picks it by the
    ``namespace`` it passes."""

    def __post_init__(self) -> None:
        modes = ("off", "skip_store", "redact")
        for where, mode in [("pii", self.pii), *(self.pii_namespaces or {}).items()]:
            if str(mode) not in modes:
                raise ConfigError(
                    f"pii of {where!r} must be one of {', '.join(modes)}, got {mode!r}"
                )
        if self.old_keys and not self.encryption_key:
            raise ConfigError("old_keys need an encryption_key (the key that seals new entries)")

    @property
    def guards_pii(self) -> bool:
        """True when some namespace's writes are checked for personal data."""
        modes = [self.pii, *(self.pii_namespaces or {}).values()]
        return any(str(mode) != "off" for mode in modes)

    @property
    def active(self) -> bool:
        """True when anything is on (else the cache is built exactly as without protection)."""
        return self.guards_pii or bool(self.encryption_key)
