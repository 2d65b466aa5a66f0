"""PII detection: ``PIIDetector(...).find/contains/redact`` and the chat-body helpers.

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
from thrifty.safety.pii.types import Finding, PIIMode, PIIType

__all__ = [
    "DEFAULT_REGIONS",
    "Finding",
    "PIIDetector",
    "PIIMode",
    "PIIType",
    "find_in_request",
    "find_in_response",
    "redact_request",
    "redact_response",
    "request_has_pii",
    "request_texts",
    "response_has_pii",
    "response_texts",
]
