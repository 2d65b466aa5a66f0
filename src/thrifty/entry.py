"""The record every backend stores: a payload plus the metadata later features need."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class Entry:
    """One cached answer.

    The metadata is stored by every backend from day one, so purging a user, auditing, PII
    rules and per-model invalidation need no migration.
    """

    key: str
    """The canonical request key (see ``thrifty.keys``)."""
    value: bytes
    """The encoded payload (see ``thrifty.codec``)."""
    namespace: str = "default"
    """Tenant or namespace; entries of different namespaces never match each other."""
    user_id: str | None = None
    """The end user the answer was produced for, so it can be purged."""
    tags: tuple[str, ...] = ()
    """Free tags, e.g. ``doc:42`` for the source document an answer was built on."""
    model: str | None = None
    """The model that produced the answer."""
    model_version: str | None = None
    """The model's version; invalidating a version drops its answers."""
    created_at: float = field(default_factory=time.time)
    """Unix time of creation."""
    expires_at: float | None = None
    """Unix time after which the entry is never served; None means never."""
    tokens_in: int = 0
    """Prompt tokens the original call consumed: what a hit saves."""
    tokens_out: int = 0
    """Completion tokens the original call produced: what a hit saves."""
    cost_usd: float = 0.0
    """What the original call cost: the dollars a hit saves."""
    latency_ms: float = 0.0
    """How long the original call took: the time a hit saves."""
    semantic: bytes | None = None
    """Scope, last user message and embedding of a semantically indexed entry
    (``thrifty.semantic.record``), so a lost vector index can be rebuilt from the store;
    None for exact-only entries. Not needed on the hit path."""
    built: Any = field(default=None, repr=False, compare=False)
    """Not stored: what ``Cache.lookup(build=...)`` made of this entry's payload, kept on
    entries a store hands back as the same object (the in-memory store)."""

    @property
    def size(self) -> int:
        """Bytes counted against the store's byte limit."""
        return len(self.value) + len(self.key) + len(self.semantic or b"")

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


class Tagged(Protocol):
    """The fields a selector reads: an entry, or anything else filed like one (read-only)."""

    @property
    def namespace(self) -> str | None: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def model(self) -> str | None: ...
    @property
    def model_version(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Selector:
    """Which entries an invalidation touches; every given field must match (AND)."""

    namespace: str | None = None
    tag: str | None = None
    model: str | None = None
    model_version: str | None = None
    user_id: str | None = None

    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (self.namespace, self.tag, self.model, self.model_version, self.user_id)
        )

    def matches(self, entry: Tagged) -> bool:
        return (
            (self.namespace is None or entry.namespace == self.namespace)
            and (self.tag is None or self.tag in entry.tags)
            and (self.model is None or entry.model == self.model)
            and (self.model_version is None or entry.model_version == self.model_version)
            and (self.user_id is None or entry.user_id == self.user_id)
        )
