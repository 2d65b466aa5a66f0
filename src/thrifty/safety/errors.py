"""Errors of the data-protection layer, rooted in thrifty's own tree.

ThriftyError
├── ConfigError
│   └── KeyConfigError     a key string that is not 32 bytes of base64 or hex, or a bad key id
└── CryptoError            a blob could not be opened (the cache treats it as a miss)
    ├── UnknownKeyError    the blob names a key id the keyring does not hold
    └── DecryptError       not a thrifty blob, an unknown format version, or the tag failed:
                           tampered bytes, the wrong AAD (another cache key) or the wrong key

They live here, not in ``thrifty/errors.py``, so the safety package stays self-contained until it
is wired into the cache; the hierarchy above is the one to merge into ``errors.py`` then.
"""

from __future__ import annotations

from thrifty.errors import ConfigError, ThriftyError


class KeyConfigError(ConfigError):
    """An encryption key or key id given in configuration is unusable."""


class CryptoError(ThriftyError):
    """An encrypted blob could not be decrypted."""


class UnknownKeyError(CryptoError):
    """The blob was encrypted with a key id this keyring does not hold (rotated out?)."""

    def __init__(self, key_id: str, known: tuple[str, ...]) -> None:
        self.key_id = key_id
        self.known = known
        super().__init__(f"blob encrypted with unknown key id {key_id!r}; keyring holds {known}")


class DecryptError(CryptoError):
    """The blob is malformed or failed authentication; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"cannot decrypt: {reason}")
