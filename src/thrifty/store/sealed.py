"""Encryption at rest as a store wrapper: what reaches the backend is sealed, what comes back is
opened, and nothing above the store (the exact layer, the semantic matcher) knows.

:class:`SealedStore` wraps any :class:`~thrifty.store.Store` (SQLite, Redis, PostgreSQL, a
breaker around them). On write it seals each entry's payload and its semantic record (which
holds the prompt's text) with AES-GCM, the cache key as associated data, so a blob copied under
another key fails to open instead of answering the wrong question; the user id is replaced by a
keyed hash, because backends file entries under it (Redis key names, index columns). On read it
opens both. A wrapper rather than a branch in the cache: with no key configured nothing wraps
the store and the hit path is unchanged.

Rotation: blobs name their key, so entries sealed under an old key of the keyring stay readable;
an entry written before encryption was switched on (no blob header) is served as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

from thrifty.entry import Entry, Selector
from thrifty.safety.crypto import Keyring, is_encrypted
from thrifty.store.base import Store
from thrifty.store.wrapper import StoreWrapper

__all__ = ["SealedStore"]


class SealedStore(StoreWrapper):
    """``inner`` with every payload and semantic record sealed by ``keyring``.

    Args:
        inner: the backend that holds the sealed entries.
        keyring: seals with its current key, opens with any of its keys.
    """

    def __init__(self, inner: Store, keyring: Keyring) -> None:
        super().__init__(inner)
        self.keyring = keyring

    # ------------------------------------------------------------ sealing
    def seal(self, entry: Entry) -> Entry:
        """A sealed copy of ``entry`` (the caller's entry is left as it is)."""
        aad = entry.key.encode()
        ring = self.keyring
        return dataclasses.replace(
            entry,
            value=ring.encrypt(entry.value, aad),
            semantic=None if entry.semantic is None else ring.encrypt(entry.semantic, aad),
            user_id=None if entry.user_id is None else ring.hash_identifier(entry.user_id),
            built=None,
        )

    def open(self, entry: Entry) -> Entry:
        """``entry`` as it was written (its user id stays hashed: the raw id is not stored).

        Raises:
            DecryptError, UnknownKeyError: the blob was tampered with or names an unknown key
                (the cache counts it as a fault and misses).
        """
        aad = entry.key.encode()
        ring = self.keyring
        if is_encrypted(entry.value):
            entry.value = ring.decrypt(entry.value, aad)
        if entry.semantic is not None and is_encrypted(entry.semantic):
            entry.semantic = ring.decrypt(entry.semantic, aad)
        return entry

    def _selector(self, selector: Selector) -> list[Selector]:
        """The selectors that match sealed entries: a user id under each key's hash."""
        if selector.user_id is None:
            return [selector]
        hashes = self.keyring.identifier_hashes(selector.user_id)
        return [dataclasses.replace(selector, user_id=h) for h in hashes]

    # ------------------------------------------------------------ Store
    def get(self, key: str) -> Entry | None:
        entry = self.inner.get(key)
        if entry is None:
            return None
        if self.inner.blocking:  # a fresh object per read: open it in place
            return self.open(entry)
        return self.open(dataclasses.replace(entry, built=None))  # the memory store's own

    def set(self, entry: Entry) -> None:
        self.inner.set(self.seal(entry))

    def set_many(self, entries: Sequence[Entry]) -> None:
        self.inner.set_many([self.seal(e) for e in entries])

    def invalidate(self, selector: Selector) -> int:
        return sum(self.inner.invalidate(s) for s in self._selector(selector))

    def iter_entries(
        self, namespace: str | None = None, *, since: float | None = None
    ) -> Iterator[Entry]:
        for entry in self.inner.iter_entries(namespace, since=since):
            yield self.open(dataclasses.replace(entry, built=None))
