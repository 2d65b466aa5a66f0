"""What the cache may store of one exchange under a PII mode: the decision in one place.

The cache layer (and the gateway's store stage) asks a :class:`PIIGuard` once per exchange, after
the answer is in, and stores what the decision says: nothing under ``skip_store`` when either side
holds PII, the redacted copies under ``redact``, the originals otherwise. The caller's request
and response are never modified: the client still gets the real answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.errors import ConfigError
from thrifty.safety.pii.chat import (
    find_in_request,
    find_in_response,
    redact_request,
    redact_response,
)
from thrifty.safety.pii.detector import PIIDetector
from thrifty.safety.pii.types import PIIMode

__all__ = ["PIIGuard", "StoreDecision"]


@dataclass(frozen=True, slots=True)
class StoreDecision:
    """Whether to store an exchange, and which copies."""

    store: bool
    """False: answer the request, write nothing (exact or semantic, prompt or answer)."""
    request: Mapping[str, Any]
    """The request to store (to index, for the semantic cache): redacted under ``redact``."""
    response: Mapping[str, Any]
    """The response to store: redacted under ``redact``."""
    found: frozenset[str]
    """The kinds of PII seen, for metrics and logs (never the values themselves)."""


class PIIGuard:
    """Applies one :class:`PIIMode` to exchanges; per key or namespace overrides are one guard
    each, sharing a detector (``guard.with_mode(...)``).

    Args:
        mode: ``off``, ``skip_store`` or ``redact`` (the config values are accepted as strings).
        detector: the detector to use; by default every built-in type, default regions.

    Raises:
        ConfigError: an unknown mode.
    """

    __slots__ = ("detector", "mode")

    def __init__(self, mode: PIIMode | str = PIIMode.OFF, detector: PIIDetector | None = None):
        try:
            self.mode = PIIMode(mode)
        except ValueError:
            known = ", ".join(m.value for m in PIIMode)
            raise ConfigError(f"unknown pii mode {mode!r}; use one of: {known}") from None
        self.detector = detector if detector is not None else PIIDetector()

    def with_mode(self, mode: PIIMode | str) -> PIIGuard:
        """A guard with another mode and the same detector (compiled once)."""
        return PIIGuard(mode, self.detector)

    def decide(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> StoreDecision:
        """The store decision for one request and its response."""
        if self.mode is PIIMode.OFF:
            return StoreDecision(True, request, response, frozenset())
        if self.mode is PIIMode.SKIP_STORE:
            found = self._kinds(request, response)
            return StoreDecision(not found, request, response, found)
        found = self._kinds(request, response)
        if not found:
            return StoreDecision(True, request, response, found)
        return StoreDecision(
            True,
            redact_request(self.detector, request),
            redact_response(self.detector, response),
            found,
        )

    def _kinds(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> frozenset[str]:
        findings = find_in_request(self.detector, request) + find_in_response(
            self.detector, response
        )
        return frozenset(str(f.type) for f in findings)
