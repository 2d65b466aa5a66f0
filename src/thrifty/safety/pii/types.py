"""The shapes of PII detection, declared once: what is found, and what the cache does about it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PIIType(StrEnum):
    """The built-in kinds of personal data; a custom regex adds its own name beside these."""

    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    """A payment card number (IIN prefix, length and Luhn checksum)."""
    IBAN = "iban"
    SSN = "ssn"
    """A US social security number outside the never-issued ranges."""
    CN_ID = "cn_id"
    """A Chinese resident identity number (birth date and ISO 7064 checksum)."""
    IP = "ip"
    """An IPv4 or IPv6 address."""


class PIIMode(StrEnum):
    """What the cache does with a request or answer that holds PII (config ``cache: {pii: …}``)."""

    OFF = "off"
    """Store as usual: no scan."""
    SKIP_STORE = "skip_store"
    """Answer the request but never store it (exact or semantic, prompt or answer)."""
    REDACT = "redact"
    """Store a copy in which each finding is replaced by its placeholder, such as ``[EMAIL]``."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of PII in a text: its kind and where it is (``text == source[start:end]``)."""

    type: str
    """A :class:`PIIType` value, or the name of a custom pattern."""
    start: int
    end: int
    text: str

    @property
    def placeholder(self) -> str:
        """What :meth:`PIIDetector.redact` writes in its place: ``[EMAIL]``, ``[PHONE]``…"""
        return f"[{self.type.upper()}]"
