"""Key rotation: re-seal every stored entry with the keyring's current key.

After a new ``encryption_key`` is configured (the previous one moved to ``old_encryption_keys``),
entries sealed under the old key stay readable but still depend on it. :func:`reseal` walks the
backend and writes each such entry back sealed with the current key; entries stored before
encryption was switched on are sealed too. Once it reports nothing left under an old key, that
key can leave the configuration.

Two passes, because a backend's ``get`` does not read the semantic record (it is not needed on
a hit): first the entries that have one (``iter_entries`` returns them whole), then every other
key. An entry the first pass wrote back is current by the second, so it is not written again
(a write from ``get``'s copy would drop its semantic record).

User ids stay hashed under the key that was current when each entry was written: the raw id is
not stored, so it cannot be hashed again. A purge looks under every key's hash, so keep an old
key in ``old_encryption_keys`` until the entries it named have expired.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from thrifty.entry import Entry
from thrifty.safety.crypto import Keyring, is_encrypted
from thrifty.store.base import Store


@dataclass(slots=True)
class ResealReport:
    """What a rotation did."""

    scanned: int = 0
    """Entries looked at."""
    resealed: int = 0
    """Entries written back under the current key (old key, or not sealed before)."""
    failed: int = 0
    """Entries that could not be opened (unknown key, tampered): left as they are."""

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def _sealed(keyring: Keyring, blob: bytes, aad: bytes) -> bytes:
    """``blob`` sealed with the current key (the same object when it already is)."""
    if not is_encrypted(blob):
        return keyring.encrypt(blob, aad)
    return keyring.reencrypt(blob, aad)


def _resealed(keyring: Keyring, entry: Entry) -> Entry | None:
    """``entry`` sealed with the current key, or None when it already is."""
    aad = entry.key.encode()
    value = _sealed(keyring, entry.value, aad)
    semantic = None if entry.semantic is None else _sealed(keyring, entry.semantic, aad)
    if value is entry.value and semantic is entry.semantic:
        return None
    return dataclasses.replace(entry, value=value, semantic=semantic, built=None)


def reseal(
    store: Store, keyring: Keyring, *, progress: Callable[[int], None] | None = None
) -> ResealReport:
    """Re-seal every entry of ``store`` (the raw backend, not a ``SealedStore`` around it)
    that is not sealed with ``keyring``'s current key.

    Args:
        store: the backend itself: its entries are read and written as stored (sealed).
        keyring: the current key seals; the old keys open.
        progress: called with 1 after each entry looked at (a progress bar).

    Raises:
        NotImplementedError: the backend cannot list its keys.
    """
    report = ResealReport()
    seen: set[str] = set()

    def visit(entry: Entry) -> None:
        report.scanned += 1
        try:
            fresh = _resealed(keyring, entry)
        except Exception:  # unknown key or tampered: counted, left for a person to look at
            report.failed += 1
            fresh = None
        if fresh is not None:
            store.set(fresh)
            report.resealed += 1
        if progress is not None:
            progress(1)

    try:
        for entry in store.iter_entries():
            seen.add(entry.key)
            visit(entry)
    except NotImplementedError:
        pass  # no entry has a semantic record on a backend that cannot list them
    for key in store.iter_keys():
        if key in seen:
            continue
        found = store.get(key)
        if found is not None:
            visit(found)
    return report


def count_keys(store: Store) -> int | None:
    """How many entries a rotation will look at (for a progress bar), None if unknown."""
    try:
        return sum(1 for _ in store.iter_keys())
    except NotImplementedError:
        return None
