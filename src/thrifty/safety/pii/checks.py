"""Validators that turn a regex candidate into a finding: checksums, number plans, address syntax.

A pattern alone flags every order number as a card and every version string as an address; these
checks are what keeps precision high. Each takes the candidate plus the text and offset around it
(some kinds are decided by their context) and returns whether it is PII. Checksums and number
plans come from maintained libraries (python-stdnum, phonenumbers, ipaddress), not local copies.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable

import phonenumbers
from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.cn import ric as _ric
from stdnum.exceptions import ValidationError
from stdnum.iso7064 import mod_97_10 as _mod97
from stdnum.us import ssn as _ssn

Check = Callable[[str, str, int], bool]
"""``check(candidate, text, start) -> bool``: whether the candidate at ``text[start:]`` is PII."""

_SEPARATORS = re.compile(r"[\s\-.()/]")

#: Issuer prefixes (IIN) of the card networks: (first prefix, last prefix, allowed lengths).
#: A Luhn-valid digit run outside these ranges is an order or tracking number, not a card.
CARD_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),  # Visa
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("34", "34", frozenset({15})),  # American Express
    ("37", "37", frozenset({15})),
    ("6011", "6011", frozenset(range(16, 20))),  # Discover
    ("644", "649", frozenset(range(16, 20))),
    ("65", "65", frozenset(range(16, 20))),
    ("62", "62", frozenset(range(16, 20))),  # UnionPay
    ("35", "35", frozenset(range(16, 20))),  # JCB (3528-3589 issued; generators use all of 35)
    ("2131", "2131", frozenset({15})),  # JCB (old 15-digit)
    ("1800", "1800", frozenset({15})),
    ("300", "305", frozenset(range(14, 20))),  # Diners Club
    ("36", "36", frozenset(range(14, 20))),
    ("38", "39", frozenset(range(14, 20))),
    ("50", "50", frozenset(range(12, 20))),  # Maestro
    ("56", "69", frozenset(range(12, 20))),
    ("0604", "0604", frozenset(range(12, 20))),
    ("2200", "2204", frozenset(range(16, 20))),  # Mir
)


def card(candidate: str, text: str, start: int) -> bool:
    """A payment card: a known issuer range, a length that issuer uses, and the Luhn checksum."""
    digits = _SEPARATORS.sub("", candidate)
    n = len(digits)
    for low, high, lengths in CARD_RANGES:
        if n in lengths and low <= digits[: len(low)] <= high:
            if not _luhn.is_valid(digits):
                return False
            # A Luhn-valid number in an issuer range is a card often enough that "order 4111…"
            # is better kept out of the cache than stored. Only a bare run of barcode length
            # (EAN-13, UPC-12, ITF-14; rare card lengths) yields to a word such as "barcode".
            return n > 14 or digits != candidate or not names_identifier(text, start)
    return False


def iban(candidate: str, text: str, start: int) -> bool:
    """An IBAN: a country that uses IBANs and the ISO 7064 mod-97 checksum.

    A wrong BBAN layout for the country does not clear it: the checksum already makes a chance
    match 1 in 97 among rare candidates, and a mistyped or generated IBAN (Faker's British ones
    are a digit short) is still someone's bank account to keep out of the cache.
    """
    number = _iban.compact(candidate)
    if not _mod97.is_valid(number[4:] + number[:4]):
        return False
    try:
        _iban.validate(number, check_country=False)
    except _iban.InvalidFormat:
        return True  # checksum and country fine, layout not
    except ValidationError:
        return False
    return True


_SSN_CONTEXT = re.compile(r"(?:\bssn|social\s+security(?:\s+(?:number|no\.?|#))?)\W{0,6}$", re.I)


def ssn(candidate: str, text: str, start: int) -> bool:
    """A US SSN outside the never-issued ranges (area 000/666/9xx, group 00, serial 0000, the
    advertised samples). Nine bare digits are an SSN only when the text says so just before."""
    if candidate.isdigit() and not _SSN_CONTEXT.search(text, max(0, start - 32), start):
        return False
    return bool(_ssn.is_valid(candidate))


def cn_id(candidate: str, text: str, start: int) -> bool:
    """A Chinese resident ID: a province code, a real birth date and the ISO 7064 check character.

    The six-digit place code is checked only for its province: python-stdnum's list of county
    codes lags the ones issued, and a real ID with a new county code must still count.
    """
    number = candidate.upper()
    if not ("11" <= number[:2] <= "82") or _ric.calc_check_digit(number) != number[-1]:
        return False
    try:
        _ric.get_birth_date(number)
    except ValidationError:
        return False
    return True


_VERSION_CONTEXT = re.compile(r"\b(?:version|ver\.?|release|build|v)\s*$", re.I)


def ipv4(candidate: str, text: str, start: int) -> bool:
    """A dotted IPv4 address that is not a version number (``version 1.2.3.4``)."""
    if _VERSION_CONTEXT.search(text, max(0, start - 12), start):
        return False
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    return True


def ipv6(candidate: str, text: str, start: int) -> bool:
    """An IPv6 address (full, ``::``-compressed, or with an embedded IPv4 tail)."""
    if sum(c != ":" for c in candidate) < 2:  # "::" or "a::" carry no address
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def email(candidate: str, text: str, start: int) -> bool:
    """An e-mail address whose domain labels are well formed (the pattern already matched)."""
    domain = candidate.rpartition("@")[2]
    return all(label and label[0] != "-" and label[-1] != "-" for label in domain.split("."))


#: Words just before a number that make it the identifier of something else: an order, a parcel,
#: an account. Stems (``\w*`` follows) because support questions misspell them ("ordedr",
#: "purchaes"); short words whole. "account" alone is not enough: "my premium account" is a plan,
#: "account number" an identifier.
_IDENTIFIER_CONTEXT = re.compile(
    r"(?:(?:\b(?:ord|purch|invoi|receipt|track|parcel|packag|shipm|transac|custom|serial|vers"
    r"|barcode)\w*|\b(?:bill|ref|reference|ticket|sku|item|case|model|build|ean|upc|isbn|usps"
    r"|ups|fedex|dhl|id|no)\b|\bacc(?:oun)?t\w*[\s.:#-]{0,4}(?:number|num|no|id)\b)"
    r"[\s.:#-]{0,4}(?:(?:number|num|no|id|code)\b[\s.:#-]{0,3})?|#\s?)$",
    re.I,
)
#: Words just before a number that say it is a phone number: then a possible length is enough.
_PHONE_CONTEXT = re.compile(
    r"(?:\b(?:phone|tel|telephone|mobile|cell|call|ring|whatsapp|fax|number|contact|reach)\b"
    r"[^\d\n]{0,16}|(?:手机|电话|号码|联系)[^\d\n]{0,6})$",
    re.I,
)
#: The candidate directly follows another number ("#12588 (281)567-6209"): it must stand alone.
_AFTER_NUMBER = re.compile(r"[\d)][ \u00a0]{1,2}$")
_TRUNK_ZERO = re.compile(r"(?<=\d)\s?\(0\)")  # "+49 (0) 30…": the national 0, not dialled
_DATE = re.compile(r"\d{1,4}([-/.])\d{1,2}\1\d{1,4}")
_EXTENSION = re.compile(r"\s*(?:x|ext\.?|extension)\s*\d{1,6}$", re.I)


def names_identifier(text: str, start: int) -> bool:
    """Whether the words just before ``text[start]`` say the number identifies an order, a parcel,
    an account… rather than a person."""
    return _IDENTIFIER_CONTEXT.search(text, max(0, start - 40), start) is not None


class PhoneCheck:
    """Phone numbers judged by libphonenumber's number plans for the configured regions.

    Evidence decides how much the number plan must confirm. An international prefix (``+``, or
    ``00`` with no order-number word before it) needs only a possible length for its country.
    A national number needs a *possible* length in some region when it is written with phone
    punctuation or follows a word such as "phone" (many real numbers, and all of Faker's, sit in
    unassigned ranges), and a *valid* number otherwise: a bare digit run, or a number right after
    another number. No national number counts after a word that names it an order, invoice or
    account number.
    """

    __slots__ = ("regions",)

    def __init__(self, regions: Iterable[str]) -> None:
        self.regions = tuple(r.upper() for r in regions)

    def __call__(self, candidate: str, text: str, start: int) -> bool:
        number = _EXTENSION.sub("", candidate)
        digits = sum(c.isdigit() for c in number)
        if not 7 <= digits <= 15:
            return False
        head = number.lstrip("( ")
        if head.startswith("+"):
            return self._international(_TRUNK_ZERO.sub("", head))
        if _DATE.fullmatch(number) or names_identifier(text, start):
            return False
        if head.startswith("00"):  # an international prefix, or an order number's zero padding
            return self._international("+" + head[2:])
        window = max(0, start - 24)
        said = _PHONE_CONTEXT.search(text, window, start) is not None
        if not said and number.isdigit() and not 10 <= digits <= 12:
            return False  # shorter bare runs are counts and codes, longer ones barcodes
        lenient = said or (not number.isdigit() and not _AFTER_NUMBER.search(text, window, start))
        possible = False
        for region in self.regions:
            try:
                parsed = phonenumbers.parse(number, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(parsed):
                return True
            possible = possible or (lenient and phonenumbers.is_possible_number(parsed))
        return possible

    @staticmethod
    def _international(number: str) -> bool:
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            return False
        return bool(phonenumbers.is_possible_number(parsed))
