"""PII detection: ``PIIDetector(...).find/contains/redact``, the chat-body helpers, and
``PIIGuard(mode).decide(request, response)``, what the cache may store.

>>> detector = PIIDetector()
>>> detector.redact("Reach me at jane.doe@example.com or +44 20 7946 0958.")
'Reach me at [EMAIL] or [PHONE].'
"""

from __future__ import annotations

from thrifty.safety.pii.chat import (
    find_in_request,
    find_in_response,
    redact_request,
    redact_response,
    request_has_pii,
    request_texts,
    response_has_pii,
    response_texts,
)
from thrifty.safety.pii.detector import DEFAULT_REGIONS, PIIDetector
from thrifty.safety.pii.guard import PIIGuard, StoreDecision
from thrifty.safety.pii.types import Finding, PIIMode, PIIType

__all__ = [
    "DEFAULT_REGIONS",
    "Finding",
    "PIIDetector",
    "PIIGuard",
    "PIIMode",
    "PIIType",
    "StoreDecision",
    "find_in_request",
    "find_in_response",
    "redact_request",
    "redact_response",
    "request_has_pii",
    "request_texts",
    "response_has_pii",
    "response_texts",
]
