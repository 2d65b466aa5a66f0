"""Encryption at rest: AES-256-GCM blobs that name their key, so keys can be rotated.

A cache entry is sealed with ``keyring.encrypt(payload, aad=cache_key)``. The AAD binds the
ciphertext to its cache key: a blob copied under another key (by a bug or by someone who can write
to Redis) fails authentication instead of answering the wrong question. The blob layout is::

    b"\\x00TC" | version (1) | len(key id) (1) | key id | nonce (12) | ciphertext | tag (16)

The leading NUL never starts a codec payload (``t1…``) or JSON text, so :func:`is_encrypted` can
tell sealed from plain entries written before encryption was switched on. The header is also part
of the authenticated data, so no byte of it can be changed unnoticed.

Rotation: a :class:`Keyring` holds the current key, which seals, and older keys, which only open.
Entries sealed under an old key stay readable until they expire or :meth:`Keyring.reencrypt`
moves them to the current key. Each configured secret is split by HKDF into an AES key and an
HMAC key, so the same secret never serves two algorithms.

Nonces are 96 random bits per blob: safe for about 2**32 blobs under one key, far beyond a cache's
lifetime between rotations.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from thrifty.safety.errors import DecryptError, KeyConfigError, UnknownKeyError

__all__ = ["Key", "Keyring", "is_encrypted", "parse_secret"]

_MAGIC = b"\x00TC"
_VERSION = 1
_PREFIX = _MAGIC + bytes([_VERSION])
_NONCE = 12
_TAG = 16
_KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def parse_secret(text: str) -> bytes:
    """The 32 key bytes written in ``text``: ``hex:…``, ``base64:…``, or bare 64 hex digits or
    base64 (standard or URL-safe alphabet).

    The caller resolves ``os.environ/NAME`` first, as it does for every other secret in config.

    Raises:
        KeyConfigError: the text does not decode to exactly 32 bytes.
    """
    text = text.strip()
    kind, sep, rest = text.partition(":")
    try:
        if sep and kind == "hex":
            raw = bytes.fromhex(rest)
        elif sep and kind == "base64":
            raw = _b64(rest)
        elif _HEX_KEY.fullmatch(text):
            raw = bytes.fromhex(text)
        else:
            raw = _b64(text)
    except (ValueError, binascii.Error) as exc:
        raise KeyConfigError(f"encryption key is not valid hex or base64: {exc}") from None
    if len(raw) != _KEY_BYTES:
        raise KeyConfigError(
            f"encryption key must be {_KEY_BYTES} bytes, got {len(raw)} "
            "(make one with: python -c 'import os,base64;print(base64.b64encode(os.urandom(32)))')"
        )
    return raw


def _b64(text: str) -> bytes:
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=purpose).derive(
        secret
    )


@dataclass(frozen=True, slots=True)
class Key:
    """One named 32-byte secret. The id travels in every blob it seals, so it must stay stable:
    without an explicit id, the id is a fingerprint of the secret."""

    id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.id):
            raise KeyConfigError(f"key id {self.id!r} must be 1-64 of [A-Za-z0-9_.-]")
        if len(self.secret) != _KEY_BYTES:
            raise KeyConfigError(f"key {self.id!r} must be {_KEY_BYTES} bytes")

    @classmethod
    def parse(cls, spec: str) -> Key:
        """A key from config text: ``SECRET`` or ``ID:SECRET`` (SECRET as in :func:`parse_secret`).

        Without an id the key is named by the first 8 hex digits of a hash of its secret, so the
        same secret always gets the same id across restarts and replicas.
        """
        head, sep, rest = spec.strip().partition(":")
        if sep and head not in ("hex", "base64"):
            return cls(head, parse_secret(rest))
        secret = parse_secret(spec)
        return cls(hashlib.sha256(b"thrifty key id\x00" + secret).hexdigest()[:8], secret)


class _Sealer:
    """The per-key state built once: the AEAD object, the HMAC key and the blob header."""

    __slots__ = ("aead", "header", "id", "mac_key")

    def __init__(self, key: Key) -> None:
        kid = key.id.encode("ascii")
        self.id = key.id
        self.aead = AESGCM(_derive(key.secret, b"thrifty/aes-256-gcm/v1"))
        self.mac_key = _derive(key.secret, b"thrifty/identifier-hmac/v1")
        self.header = _PREFIX + bytes([len(kid)]) + kid


def is_encrypted(blob: bytes) -> bool:
    """Whether ``blob`` is a sealed thrifty blob (checks the header, not the tag)."""
    return blob[:3] == _MAGIC


class Keyring:
    """The current key, which seals, plus old keys, which only open.

    Args:
        current: the key every new blob is sealed with.
        old: keys of earlier rotations; blobs sealed with them stay readable.

    Raises:
        KeyConfigError: two keys share an id.
    """

    __slots__ = ("_by_id", "_current", "_keys")

    def __init__(self, current: Key, old: Iterable[Key] = ()) -> None:
        keys = [current, *old]
        ids = [k.id for k in keys]
        if len(set(ids)) != len(ids):
            raise KeyConfigError(f"duplicate key ids in keyring: {ids}")
        self._keys = tuple(keys)
        sealers = [_Sealer(k) for k in keys]
        self._current = sealers[0]
        self._by_id = {s.id.encode("ascii"): s for s in sealers}

    @classmethod
    def from_config(cls, current: str, old: Iterable[str] = ()) -> Keyring:
        """A keyring from config strings (``SECRET`` or ``ID:SECRET``, already resolved from
        ``os.environ/NAME`` by the caller)."""
        return cls(Key.parse(current), [Key.parse(s) for s in old])

    @property
    def current_id(self) -> str:
        """The id of the key that seals new blobs."""
        return self._current.id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, current first."""
        return tuple(k.id for k in self._keys)

    def rotate(self, new: Key) -> Keyring:
        """A keyring where ``new`` seals and every key of this one still opens."""
        return Keyring(new, self._keys)

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Seal ``plaintext`` with the current key, bound to ``aad`` (the cache key)."""
        sealer = self._current
        nonce = os.urandom(_NONCE)
        head = sealer.header + nonce
        return head + sealer.aead.encrypt(nonce, plaintext, head + aad)

    def decrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        """Open a blob sealed by :meth:`encrypt` with any key of this keyring.

        Raises:
            UnknownKeyError: the blob names a key this keyring does not hold.
            DecryptError: not a sealed blob, an unknown version, or authentication failed
                (tampered bytes, another AAD, or another secret under the same id).
        """
        sealer, start = self._open_header(blob)
        end = start + _NONCE
        if len(blob) < end + _TAG:
            raise DecryptError("blob is truncated")
        try:
            return sealer.aead.decrypt(blob[start:end], blob[end:], blob[:end] + aad)
        except InvalidTag:
            raise DecryptError("authentication failed (tampered, wrong AAD or wrong key)") from None

    def key_id_of(self, blob: bytes) -> str:
        """The id of the key that sealed ``blob`` (read from its header, not authenticated)."""
        if blob[:4] != _PREFIX or len(blob) < 5:
            raise DecryptError("not a sealed blob of a known version")
        return blob[5 : 5 + blob[4]].decode("ascii", "replace")

    def needs_rotation(self, blob: bytes) -> bool:
        """Whether ``blob`` is sealed with a key other than the current one."""
        return self.key_id_of(blob) != self._current.id

    def reencrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        """``blob`` sealed with the current key (the same object when it already is): what
        ``thrifty cache rotate-key`` writes back for each entry."""
        if not self.needs_rotation(blob):
            return blob
        return self.encrypt(self.decrypt(blob, aad), aad)

    def hash_identifier(self, identifier: str) -> str:
        """A keyed HMAC-SHA256 of a user id (32 hex digits), for cache key names: the raw id never
        reaches the store, and without the key nobody can test guesses against it."""
        return _mac(self._current.mac_key, identifier)

    def identifier_hashes(self, identifier: str) -> tuple[str, ...]:
        """:meth:`hash_identifier` under every key, current first: a purge after a rotation must
        also find the entries named under old keys."""
        return tuple(_mac(s.mac_key, identifier) for s in self._by_id.values())

    def _open_header(self, blob: bytes) -> tuple[_Sealer, int]:
        if blob[:3] != _MAGIC:
            raise DecryptError("not a sealed blob")
        if blob[3:4] != _PREFIX[3:]:
            raise DecryptError(f"unknown blob version {blob[3:4]!r}")
        if len(blob) < 5:
            raise DecryptError("blob is truncated")
        start = 5 + blob[4]
        kid = blob[5:start]
        sealer = self._by_id.get(kid)
        if sealer is None:
            raise UnknownKeyError(kid.decode("ascii", "replace"), self.key_ids)
        return sealer, start


def _mac(key: bytes, identifier: str) -> str:
    return hmac.digest(key, identifier.encode("utf-8"), "sha256")[:16].hex()
