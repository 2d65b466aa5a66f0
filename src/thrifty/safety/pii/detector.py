"""Find, test for, and redact personal data in text.

Each kind of PII is a rule: a trigger (a character the text must contain), a candidate regex, and
a check from :mod:`.checks`. The trigger is the fast path: most support questions hold no ``@``,
no ``:`` and no digit, so :meth:`PIIDetector.contains` decides them with a few ``in`` tests and
one digit search, in about a microsecond. Rules run in priority order and a later finding that
overlaps an earlier one is dropped: an e-mail's digits are not also a phone number, an IBAN's
digits are not also a card.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from thrifty.errors import ConfigError
from thrifty.safety.pii import checks
from thrifty.safety.pii.types import Finding, PIIType

__all__ = ["DEFAULT_REGIONS", "PIIDetector"]

#: Regions whose national phone formats are recognised (any region's ``+CC`` numbers always are).
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "CN", "IN")

Trigger = Literal["@", ":", ".", "digit", "always"]

# ASCII-only look-arounds: CJK characters count as \w, and 我的电话15191417776 must still match.
_A = "0-9A-Za-z"
# A phone number: digit groups joined by phone punctuation, or one bare run. Groups stop at a long
# digit run, so "purchase 113542617735902 01 23 89 46 45" yields the order number and the phone
# number as two candidates, not one failed blend.
_PHONE_BODY = r"(?:\d{1,8}(?:[ \u00a0().\-/]{1,3}\d{1,8}){1,7}|\d{7,15})"


@dataclass(frozen=True, slots=True)
class _Rule:
    type: str
    trigger: Trigger
    pattern: re.Pattern[str]
    check: checks.Check | None
    shrink: bool = False
    """On a failed check, retry without a short last space-separated group (a number followed by
    a count: ``4111 1111 1111 1111 12 items``)."""


def _rules(regions: tuple[str, ...]) -> tuple[_Rule, ...]:
    """The built-in rules in priority order (earlier rules win overlaps: IPv6 before IPv4 so
    ``::ffff:192.0.2.1`` is one address)."""
    return (
        _Rule(
            PIIType.EMAIL,
            "@",
            re.compile(
                rf"(?<![{_A}._%+-])[{_A}][{_A}._%+-]{{0,63}}@(?:[{_A}-]{{1,63}}\.)+[A-Za-z]{{2,24}}"
                rf"(?![{_A}-])"
            ),
            checks.email,
        ),
        _Rule(
            PIIType.IBAN,
            "digit",
            re.compile(
                rf"(?<![{_A}])[A-Za-z]{{2}}\d{{2}}(?:[ -]?[{_A}]{{4}}){{2,7}}"
                rf"(?:[ -]?[{_A}]{{1,3}})?(?![{_A}])"
            ),
            checks.iban,
        ),
        _Rule(
            PIIType.CN_ID,
            "digit",
            re.compile(rf"(?<![{_A}])\d{{17}}[\dXx](?![{_A}])"),
            checks.cn_id,
        ),
        _Rule(
            PIIType.CARD,
            "digit",
            re.compile(
                rf"(?<![{_A}+-])(?:\d{{12,19}}|\d{{4}}(?:[ -]\d{{4}}){{2}}(?:[ -]\d{{1,4}})?"
                rf"(?:[ -]\d{{1,3}})?|\d{{4}}[ -]\d{{6}}[ -]\d{{4,5}})(?![{_A}])"
            ),
            checks.card,
            shrink=True,
        ),
        _Rule(
            PIIType.SSN,
            "digit",
            re.compile(r"(?<![\d-])(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}|\d{9})(?![\d-])"),
            checks.ssn,
        ),
        _Rule(
            PIIType.IP,
            ":",
            re.compile(
                rf"(?<![{_A}:])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}"
                rf"(?:(?:\d{{1,3}}\.){{3}}\d{{1,3}}|[0-9A-Fa-f]{{1,4}})?(?![{_A}:])"
            ),
            checks.ipv6,
        ),
        _Rule(
            PIIType.IP,
            ".",
            re.compile(rf"(?<![{_A}.])(?:\d{{1,3}}\.){{3}}\d{{1,3}}(?!\.?\d)"),
            checks.ipv4,
        ),
        _Rule(
            PIIType.PHONE,
            "digit",
            re.compile(
                rf"(?<![{_A}+.\-/$€£¥])(?:\+|\(\+?)?{_PHONE_BODY}"
                rf"(?:\s?(?:x|ext\.?|extension)\s?\d{{1,6}})?(?![{_A}])",
                re.I,
            ),
            checks.PhoneCheck(regions),
            shrink=True,
        ),
    )


_DIGIT = re.compile(r"\d")


class PIIDetector:
    """Finds personal data in text: e-mail, phone, card, IBAN, SSN, Chinese ID, IP, custom.

    Args:
        types: the built-in kinds to look for (default: all of :class:`PIIType`).
        custom: extra kinds as ``{name: regex}``; every match is a finding of that name.
        regions: regions whose national phone numbers count (``+CC`` numbers always do).

    Raises:
        ConfigError: an unknown type, a custom name that shadows a built-in one, or a custom
            pattern that does not compile.
    """

    __slots__ = ("_rules",)

    def __init__(
        self,
        types: Iterable[PIIType | str] | None = None,
        custom: Mapping[str, str | re.Pattern[str]] | None = None,
        regions: Iterable[str] = DEFAULT_REGIONS,
    ) -> None:
        try:
            wanted = set(PIIType) if types is None else {PIIType(t) for t in types}
        except ValueError as exc:
            known = [t.value for t in PIIType]
            raise ConfigError(f"unknown PII type: {exc}; known: {known}") from None
        rules = [r for r in _rules(tuple(regions)) if r.type in wanted]
        for name, pattern in (custom or {}).items():
            if name in set(PIIType):
                raise ConfigError(f"custom PII pattern {name!r} shadows a built-in type")
            try:
                compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
            except re.error as exc:
                raise ConfigError(f"custom PII pattern {name!r} does not compile: {exc}") from None
            rules.append(_Rule(name, "always", compiled, None))
        self._rules = tuple(rules)

    def contains(self, text: str) -> bool:
        """Whether ``text`` holds any PII (``bool(find(text))``, but stops at the first)."""
        has_digit: bool | None = None
        for rule in self._rules:
            trigger = rule.trigger
            if trigger == "digit":
                if has_digit is None:
                    has_digit = _DIGIT.search(text) is not None
                if not has_digit:
                    continue
            elif trigger != "always" and trigger not in text:
                continue
            for match in rule.pattern.finditer(text):
                if _accept(rule, text, match) is not None:
                    return True
        return False

    def find(self, text: str) -> list[Finding]:
        """Every piece of PII in ``text``, in order of position, none overlapping."""
        found: list[Finding] = []
        has_digit: bool | None = None
        for rule in self._rules:
            trigger = rule.trigger
            if trigger == "digit":
                if has_digit is None:
                    has_digit = _DIGIT.search(text) is not None
                if not has_digit:
                    continue
            elif trigger != "always" and trigger not in text:
                continue
            for match in rule.pattern.finditer(text):
                span = _accept(rule, text, match)
                if span is None:
                    continue
                start, end = span
                if any(start < f.end and f.start < end for f in found):
                    continue
                found.append(Finding(rule.type, start, end, text[start:end]))
        found.sort(key=lambda f: f.start)
        return found

    def redact(self, text: str) -> str:
        """``text`` with each finding replaced by its placeholder (``[EMAIL]``, ``[PHONE]``…)."""
        findings = self.find(text)
        if not findings:
            return text
        parts: list[str] = []
        last = 0
        for f in findings:
            parts.append(text[last : f.start])
            parts.append(f.placeholder)
            last = f.end
        parts.append(text[last:])
        return "".join(parts)


def _accept(rule: _Rule, text: str, match: re.Match[str]) -> tuple[int, int] | None:
    """The span of ``match`` that passes the rule's check, if any."""
    start, end = match.span()
    check = rule.check
    if check is None:
        return (start, end) if end > start else None
    candidate = match.group()
    while True:
        if check(candidate, text, start):
            return start, start + len(candidate)
        if not rule.shrink:
            return None
        cut = candidate.rfind(" ")
        if cut <= 0 or sum(c.isdigit() for c in candidate[cut:]) >= 4:
            return None  # only a short trailing group ("12 items") is cut, never a block of four
        candidate = candidate[:cut].rstrip(" -.(/")
