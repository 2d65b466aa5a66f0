"""What kind of answer a question asks for, and which sentences could hold one.

"When did the pula come into circulation?" wants a date, "how many moons..." a number. An
embedding, a static one most of all, scores "The pula was introduced in 1976" no closer to the
question than a sentence about the pula's coins, and BM25 sees no shared term in "1976". Question
answering systems have used the expected answer type to rank passages since TREC QA; here it is a
small bonus (:attr:`~thrifty.compression.scoring.Weights.answer_type`) for the sentences that
contain an answer of the kind asked for. Only dates and quantities are typed: they can be found
by their form alone (digits, months, number words), while a person or a place cannot be told from
any other capitalised word (a bonus for capitals measured ±0 on the dev splits).

A sentence's kinds depend on its text alone, so they are kept with its analysis in the document
cache; the question's kind is a few regular expressions per call.
"""

from __future__ import annotations

import re

#: Bits of a unit's kinds (an ``int`` per unit: several may be set).
DATE = 1
NUMBER = 2

_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    "twenty|thirty|forty|fifty|hundred|thousand|million|billion|dozen|once|twice"
)
_HAS_DATE = re.compile(rf"\b(?:{_MONTHS})\b|\b(?:1[0-9]{{3}}|20[0-9]{{2}})s?\b|\bcentury\b", re.I)
_HAS_NUMBER = re.compile(rf"\d|\b(?:{_NUMBER_WORDS})\b", re.I)

_ASKS_DATE = re.compile(
    r"^\s*(?:(?:in|by|since|until|from)\s+)?(?:when|what year|which year|what date|what time"
    r"|what century|what decade)\b"
    r"|\b(?:what|which) (?:year|date|century|decade)\b",
    re.I,
)
_ASKS_NUMBER = re.compile(
    r"\bhow (?:many|much|long|old|far|big|tall|high|fast|deep|large|often)\b"
    r"|\b(?:what|which) (?:percentage|percent|number|age|population|amount)\b",
    re.I,
)


def expected_kind(question: str) -> int:
    """The kind of answer ``question`` asks for: :data:`DATE`, :data:`NUMBER` or 0 (any)."""
    if _ASKS_DATE.search(question):
        return DATE
    if _ASKS_NUMBER.search(question):
        return NUMBER
    return 0


def unit_kinds(text: str) -> int:
    """The kinds of answer ``text`` contains, as bits (:data:`DATE` implies :data:`NUMBER` when
    the date has digits)."""
    kinds = 0
    if _HAS_DATE.search(text):
        kinds |= DATE
    if _HAS_NUMBER.search(text):
        kinds |= NUMBER
    return kinds
