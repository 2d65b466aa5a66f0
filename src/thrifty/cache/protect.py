"""Data protection wired into the cache: the PII guard as a layer, encryption as a store wrapper.

Imported only when ``Cache(protect=ProtectSettings(...))`` turns something on, so a cache
without protection never loads ``phonenumbers`` or ``cryptography`` and its hit path is the
same as before.

Under ``redact`` the entry is filed under the key of the *redacted* request. Two requests that
differ only in the personal value ("mail a@x.com" / "mail b@y.org") then share one stored
entry, whose prompt and answer hold only placeholders: the store never sees either value, and
the second request is a hit. The price: the answer served is the redacted one (the first
caller's own data does not leak to the second). Lookups find it through :meth:`PIILayer.lookup`,
which the facade walks after an exact miss, so a request with no PII costs nothing extra.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from thrifty import codec
from thrifty.cache.exact import ExactLayer
from thrifty.cache.settings import ProtectSettings, SemanticSettings
from thrifty.cache.types import Hit, Layer, Write
from thrifty.keys import request_key
from thrifty.safety.pii import (
    PIIDetector,
    PIIMode,
    redact_request,
    redact_response,
    request_has_pii,
    response_has_pii,
)
from thrifty.store import Store

__all__ = ["PIILayer", "protect_semantic", "protect_store"]


def protect_store(store: Store, settings: ProtectSettings) -> Store:
    """``store`` sealed with the settings' keyring, or ``store`` itself without a key."""
    if not settings.encryption_key:
        return store
    from thrifty.safety.crypto import Keyring
    from thrifty.store.sealed import SealedStore

    return SealedStore(store, Keyring.from_config(settings.encryption_key, settings.old_keys))


def protect_semantic(
    settings: SemanticSettings | None, protect: ProtectSettings
) -> SemanticSettings | None:
    """The semantic settings under encryption: the vector index in memory only. Its folder
    would hold every prompt's text in the clear; from memory it is rebuilt at start from the
    store's sealed records instead."""
    if settings is None or not protect.encryption_key or settings.index is None:
        return settings
    return dataclasses.replace(settings, index=None)


def _is_response(value: Any) -> bool:
    """An OpenAI- or Anthropic-shaped answer: only its texts are personal data (its ids and
    timestamps are long digit runs a phone or card rule would flag)."""
    return isinstance(value, Mapping) and ("choices" in value or "content" in value)


def _has_pii(detector: PIIDetector, value: Any) -> bool:
    """Whether an answer holds personal data: its texts, or any string of another shape."""
    if isinstance(value, str):
        return detector.contains(value)
    if _is_response(value):
        return response_has_pii(detector, value)
    if isinstance(value, Mapping):
        return any(_has_pii(detector, v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_pii(detector, v) for v in value)
    return False


def _scrub(detector: PIIDetector, value: Any) -> Any:
    """``value`` with its personal data replaced by placeholders (shapes as in `_has_pii`)."""
    if isinstance(value, str):
        return detector.redact(value)
    if _is_response(value):
        return redact_response(detector, value)
    if isinstance(value, Mapping):
        return {k: _scrub(detector, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(detector, v) for v in value)
    return value


class PIILayer(Layer):
    """Decides what of each write may be stored; under ``redact``, also finds redacted entries.

    Args:
        settings: the PII mode (``skip_store`` or ``redact``) and custom patterns.
        exact: the exact layer, to read the entry filed under a redacted request's key.
    """

    blocking = True  # detection is regex and checksum work: off the event loop

    def __init__(self, settings: ProtectSettings, exact: ExactLayer) -> None:
        self.mode = PIIMode(str(settings.pii))
        self.modes = {ns: PIIMode(str(m)) for ns, m in (settings.pii_namespaces or {}).items()}
        self.detector = PIIDetector(custom=dict(settings.pii_custom or {}))
        self._exact = exact

    def mode_for(self, namespace: str) -> PIIMode:
        """The namespace's own mode, else its tenant's (the part before ``/``), else the
        default."""
        modes = self.modes
        if not modes:
            return self.mode
        found = modes.get(namespace)
        if found is None:
            found = modes.get(namespace.split("/", 1)[0], self.mode)
        return found

    # ------------------------------------------------------------ layer hooks
    def lookup(self, key: str, request: Mapping[str, Any], kind: str, namespace: str) -> Hit | None:
        if self.mode_for(namespace) is not PIIMode.REDACT:
            return None
        if not request_has_pii(self.detector, request):
            return None
        redacted = redact_request(self.detector, request)
        return self._exact.lookup(request_key(redacted, namespace, kind), namespace, None)

    def admit(self, write: Write) -> Write | None:
        """The write itself when it holds no PII; else nothing (``skip_store``) or the
        redacted copy filed under the redacted request's key (``redact``)."""
        entry, request, kind, value = write
        mode = self.mode_for(entry.namespace)
        if mode is PIIMode.OFF:
            return write
        asked = request is not None and request_has_pii(self.detector, request)
        if not asked and not _has_pii(self.detector, value):
            return write
        if mode is PIIMode.SKIP_STORE:
            return None
        clean = _scrub(self.detector, value)
        entry.value = codec.encode(clean)
        if request is not None and asked:
            request = redact_request(self.detector, request)
            entry.key = request_key(request, entry.namespace, kind)
        return Write(entry, request, kind, clean)
