"""Find, test for, and redact personal data in text.

Each kind of PII is a rule: what the text must hold for it to run (a digit, a character), a
candidate regex, and a check from :mod:`.checks`. That is the fast path: most support questions
hold no digit, no ``@`` and no ``:``, so :meth:`PIIDetector.contains` decides them with one digit
search and two ``in`` tests, in about a microsecond. Rules run in priority order and a later
finding that overlaps an earlier one is dropped: an e-mail's digits are not also a phone number,
an IBAN's digits are not also a card.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import phonenumbers

from thrifty.errors import ConfigError
from thrifty.safety.pii import checks
from thrifty.safety.pii.types import Finding, PIIType

__all__ = ["DEFAULT_REGIONS", "PIIDetector"]

#: Regions whose national phone formats are recognised (any region's ``+CC`` numbers always are).
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "CN", "IN")


# ASCII-only look-arounds: CJK characters count as \w, and 我的电话15191417776 must still match.
_A = "0-9A-Za-z"
# A phone number: digit groups joined by phone punctuation, or one bare run. Groups stop at a long
# digit run, so "purchase 113542617735902 01 23 89 46 45" yields the order number and the phone
# number as two candidates, not one failed blend.
# Separators: one of space - . / or a parenthesis with a space beside it; never " - " or ". ",
# which join a number to the next one in prose.
_PHONE_SEP = r"(?:\)[ \u00a0]?|[ \u00a0]?\(|[ \u00a0\-./])"
_PHONE_BODY = rf"(?:\d{{1,10}}(?:{_PHONE_SEP}\d{{1,10}}){{1,7}}|\d{{7,15}})"


@dataclass(frozen=True, slots=True)
class _Rule:
    type: str
    needs_digit: bool
    """Skip the rule on text without a digit (most support questions)."""
    needs: str
    """A character the text must hold for the rule to run ("" for none)."""
    pattern: re.Pattern[str]
    check: checks.Check | None
    shrink: bool = False
    """On a failed check, retry without a short last space-separated group (a number followed by
    a count: ``4111 1111 1111 1111 12 items``), or any last group of a ``+`` number."""
    resume: bool = False
    """After a failed candidate, look again from a later group (see :func:`_resume_at`):
    "#85632 06 12 65 99 14" holds a phone number after an invoice one."""


def _rules(regions: tuple[str, ...]) -> tuple[_Rule, ...]:
    """The built-in rules in priority order (earlier rules win overlaps: IPv6 before IPv4 so
    ``::ffff:192.0.2.1`` is one address)."""
    return (
        _Rule(
            PIIType.EMAIL,
            False,
            "@",
            re.compile(
                rf"(?<![{_A}._%+-])[{_A}][{_A}._%+-]{{0,63}}@(?:[{_A}-]{{1,63}}\.)+[A-Za-z]{{2,24}}"
                rf"(?![{_A}-])"
            ),
            checks.email,
        ),
        _Rule(
            PIIType.IBAN,
            True,
            "",
            re.compile(
                rf"(?<![{_A}])[A-Za-z]{{2}}\d{{2}}(?:[ -]?[{_A}]{{4}}){{2,7}}"
                rf"(?:[ -]?[{_A}]{{1,3}})?(?![{_A}])"
            ),
            checks.iban,
        ),
        _Rule(
            PIIType.CN_ID,
            True,
            "",
            re.compile(rf"(?<![{_A}])\d{{17}}[\dXx](?![{_A}])"),
            checks.cn_id,
        ),
        _Rule(
            PIIType.CARD,
            True,
            "",
            re.compile(
                rf"(?<![{_A}+-])(?:\d{{12,19}}|\d{{4}}(?:[ -]\d{{4}}){{2}}(?:[ -]\d{{1,4}})?"
                rf"(?:[ -]\d{{1,3}})?|\d{{4}}[ -]\d{{6}}[ -]\d{{4,5}})(?![{_A}])"
            ),
            checks.card,
            shrink=True,
        ),
        _Rule(
            PIIType.SSN,
            True,
            "",
            re.compile(r"(?<![\d-])(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}|\d{9})(?![\d-])"),
            checks.ssn,
        ),
        _Rule(
            PIIType.IP,
            False,  # "fe80::abcd" may hold no decimal digit
            ":",
            re.compile(
                rf"(?<![{_A}:])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}"
                rf"(?:(?:\d{{1,3}}\.){{3}}\d{{1,3}}|[0-9A-Fa-f]{{1,4}})?(?![{_A}:])"
            ),
            checks.ipv6,
        ),
        _Rule(
            PIIType.IP,
            True,
            ".",
            re.compile(rf"(?<![{_A}.])(?:\d{{1,3}}\.){{3}}\d{{1,3}}(?!\.?\d)"),
            checks.ipv4,
        ),
        _Rule(
            PIIType.PHONE,
            True,
            "",
            re.compile(
                rf"(?<![{_A}+.\-/$€£¥])(?:\+|\(\+?)?{_PHONE_BODY}"
                rf"(?:\s?(?:x|ext\.?|extension)\s?\d{{1,6}})?(?![{_A}])",
                re.I,
            ),
            checks.PhoneCheck(regions),
            shrink=True,
            resume=True,
        ),
    )


_DIGIT = re.compile(r"\d")
_GROUP = re.compile(r"\(?\d+")


class PIIDetector:
    """Finds personal data in text: e-mail, phone, card, IBAN, SSN, Chinese ID, IP, custom.

    Args:
        types: the built-in kinds to look for (default: all of :class:`PIIType`).
        custom: extra kinds as ``{name: regex}``; every match is a finding of that name.
        regions: regions whose national phone numbers count (``+CC`` numbers always do).

    Raises:
        ConfigError: an unknown type or region, a custom name that shadows a built-in one, or
            a custom pattern that does not compile.
    """

    __slots__ = ("_digit_free_rules", "_rules")

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
        regions = tuple(r.upper() for r in regions)
        unknown = sorted(set(regions) - phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise ConfigError(f"unknown phone regions {unknown}; use ISO 3166 codes such as 'US'")
        rules = [r for r in _rules(regions) if r.type in wanted]
        for name, pattern in (custom or {}).items():
            if name in set(PIIType):
                raise ConfigError(f"custom PII pattern {name!r} shadows a built-in type")
            try:
                compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
            except re.error as exc:
                raise ConfigError(f"custom PII pattern {name!r} does not compile: {exc}") from None
            rules.append(_Rule(name, False, "", compiled, None))
        self._rules = tuple(rules)
        self._digit_free_rules = tuple(r for r in rules if not r.needs_digit)

    def contains(self, text: str) -> bool:
        """Whether ``text`` holds any PII (``bool(find(text))``, but stops at the first)."""
        return next(self._spans(text, ()), None) is not None

    def find(self, text: str) -> list[Finding]:
        """Every piece of PII in ``text``, in order of position, none overlapping."""
        found: list[Finding] = []
        for kind, start, end in self._spans(text, found):
            found.append(Finding(kind, start, end, text[start:end]))
        found.sort(key=lambda f: f.start)
        return found

    def _spans(self, text: str, taken: Sequence[Finding]) -> Iterator[tuple[str, int, int]]:
        """``(type, start, end)`` of each accepted candidate, rule by rule in priority order.

        A candidate that overlaps a span in ``taken`` (the findings of earlier rules, which the
        caller extends as spans are yielded) counts as failed, so a phone number is not looked
        for inside an IBAN but can still be found right after it.
        """
        rules = self._rules if _DIGIT.search(text) else self._digit_free_rules
        for rule in rules:
            if rule.needs and rule.needs not in text:
                continue
            pattern, pos = rule.pattern, 0
            while (match := pattern.search(text, pos)) is not None:
                pos = match.end()
                start = match.start()
                clear = not any(start < f.end and f.start < pos for f in taken)
                span = _accept(rule, text, match) if clear else None
                if span is not None:
                    yield rule.type, span[0], span[1]
                elif rule.resume:
                    pos = _resume_at(match) or pos

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
        if cut <= 0:
            return None
        if candidate[0] != "+" and sum(c.isdigit() for c in candidate[cut:]) >= 4:
            return None  # only a short trailing group ("12 items") is cut, never a block of four
        candidate = candidate[:cut].rstrip(" -.(/")


def _resume_at(match: re.Match[str]) -> int | None:
    """Where a later candidate may start inside a failed one: a group after a space that opens
    with a trunk ``0`` or a parenthesis, or any group after one long enough to be a whole number
    ("4800316992 3449495959"). Never between two blocks of four digits: that is the layout of
    tracking and card numbers, not a number followed by a phone number."""
    text, end = match.string, match.end()
    pos = match.start()
    while (space := text.find(" ", pos, end)) != -1:
        before = text[pos:space].rpartition(" ")[2]
        pos = space + 1
        group = _GROUP.match(text, pos, end)
        if group is None:
            continue
        if len(before) == 4 and len(group.group()) == 4 and before.isdigit():
            continue
        if text[pos] in "0(" or sum(c.isdigit() for c in before) >= 7:
            return pos
    return None
