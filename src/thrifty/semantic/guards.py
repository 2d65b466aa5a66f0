"""Guards that veto a semantic hit when two questions differ where an embedding is blind.

Sentence embeddings put "refund for order 123" next to "refund for order 124", "flights to
Paris" next to "flights to London", "Why do Russians dislike Poles?" next to "Why do Poles
dislike Russians?" and a question next to its negation: the words that change the answer are a
small part of the sentence, or only their order. Each guard compares one such feature of the query
with the cached question and names the difference that blocks the hit. Plain rules, no model:
regular expressions for numbers, model codes, money, versions and dates, capitalization for
names, word order for swapped roles, and the contrasts of ``traps.py`` (a predicate negated on
one side only, antonyms, opposite comparisons, scope, direction and pronoun swaps), which work on
lower-case text and let paraphrases through ("i cannot locate my phone" / "help me locate my
phone"). A blocked hit costs one model call; a wrong hit costs a wrong answer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from thrifty.errors import ConfigError
from thrifty.semantic import traps
from thrifty.semantic.base import Guard

# ------------------------------------------------------------------ numbers, money, versions
_NUMBER = re.compile(
    r"""(?<![\w.])(?:[$€£¥₹]\s?)?            # optional currency sign
        (\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))*   # 1,000 / 42 / 3.11 / 1.2.3 (versions)
        (?:\s?(%|k|m|bn|st|nd|rd|th|am|pm)\b)?  # 10k, 5%, 1st, 9am
    """,
    re.VERBOSE | re.IGNORECASE,
)
_NUMBER_WORDS = {
    "zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "fifteen": "15", "twenty": "20", "thirty": "30", "fifty": "50", "hundred": "100",
    "thousand": "1000", "million": "1000000", "billion": "1000000000", "dozen": "12",
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th",
    "half": "0.5", "twice": "2x", "double": "2x", "triple": "3x",
}  # fmt: skip
_VERSION_PREFIX = re.compile(r"\bv(?=\d)", re.IGNORECASE)
# "one" is left out on purpose: far more often a pronoun ("which one is better") than a count.
_ORDINAL_SUFFIX = {"st", "nd", "rd", "th"}


def numbers(text: str) -> Counter[str]:
    """The numbers of a text, normalized: ``"$1,000"`` → ``"1000"``, ``"v3.11"`` → ``"3.11"``,
    ``"1st"``/``"first"`` → ``"1st"``, ``"ten"`` → ``"10"``, ``"5%"`` → ``"5%"``."""
    found: Counter[str] = Counter()
    for match in _NUMBER.finditer(_VERSION_PREFIX.sub("", text)):
        whole = match.group(0).lower().lstrip("$€£¥₹ ").replace(",", "").replace(" ", "")
        if whole[-2:] in _ORDINAL_SUFFIX and whole[:-2].isdigit():
            whole = str(int(whole[:-2])) + _ordinal(int(whole[:-2]))
        elif whole.isdigit():
            whole = str(int(whole))  # "007" and "7" are the same number
        found[whole] += 1
    for word in _WORD.findall(text.lower()):
        value = _NUMBER_WORDS.get(word)
        if value is not None:
            found[value] += 1
    return found


_CODE = re.compile(r"(?<![\w.])(?=[\w-]*\d)(?=[\w-]*[^\W\d_])[\w-]*\w")
_NUMBER_WITH_UNIT = re.compile(r"\d+(?:st|nd|rd|th|s|k|m|bn|am|pm|x|%)", re.IGNORECASE)


def codes(text: str) -> set[str]:
    """Model numbers, SKUs and IDs: words mixing letters and digits (``"M604dn"``, ``"X7"``,
    ``"AB-1234"``), lower-cased; "10k", "1st" or "1990s" are numbers, not codes."""
    return {
        word.lower()
        for word in _CODE.findall(text)
        if not _NUMBER_WITH_UNIT.fullmatch(word) and not word.isdigit()
    }


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


# ------------------------------------------------------------------------------------ dates
_MONTHS = [
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
]  # fmt: skip
_MONTH_ABBREVIATIONS = {m[:3]: m for m in _MONTHS} | {"sept": "september"}
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_RELATIVE_DAYS = {
    "today", "tonight", "tomorrow", "yesterday", "weekend", "weekday", "morning", "evening",
    "afternoon", "night",
}  # fmt: skip
_RELATIVE_PERIOD = re.compile(
    r"\b(last|next|this|previous|coming|past)\s+(day|week|month|year|quarter|weekend|"
    + "|".join(_MONTHS + _WEEKDAYS)
    + r")\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_DAY_WORDS = set(_WEEKDAYS) | _RELATIVE_DAYS
_WORKING_DAYS = re.compile(r"\b(?:business|working|work|bank)[\s-]+days?\b")


def dates(text: str) -> Counter[str]:
    """Month and weekday names, relative days ("tomorrow") and periods ("last week")."""
    found: Counter[str] = Counter()
    lowered = text.lower()
    for match in _RELATIVE_PERIOD.finditer(lowered):
        found[f"{match.group(1)} {match.group(2)}"] += 1
    lowered = _WORKING_DAYS.sub("weekday", lowered)
    for word in _WORD.findall(lowered):
        if len(word) > 4 and word.endswith("s") and word[:-1] in _DAY_WORDS:
            word = word[:-1]  # "weekends", "mondays": the plural names the same days
        if word in _MONTHS or word in _WEEKDAYS or word in _RELATIVE_DAYS:
            found[word] += 1
        elif word in _MONTH_ABBREVIATIONS and word != "may":  # "may" is mostly the verb
            found[_MONTH_ABBREVIATIONS[word]] += 1
    if "may" in found and not re.search(r"\bmay\s+\d|\d\s+may\b|\bin\s+may\b", lowered):
        del found["may"]  # the verb ("may I"), not the month
    return found


# --------------------------------------------------------------------------------- negation
_NEGATIONS = {
    "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor",
    "without", "cannot", "unable", "lack", "lacks", "lacking", "fail", "fails", "failed",
    "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "wont", "wouldnt",
    "shouldnt", "couldnt", "cant", "hasnt", "havent", "hadnt", "mustnt", "neednt", "aint",
}  # fmt: skip
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'"})


def negated(text: str) -> bool:
    """True when the text contains a negation cue (``not``, ``n't``, ``never``, ``unable``…)."""
    words = _WORD.findall(text.lower().translate(_APOSTROPHES))
    return any(w.endswith("n't") or w.replace("'", "") in _NEGATIONS for w in words)


# ------------------------------------------------------------------------- named entities
_CAPITALIZED = re.compile(r"\b[A-Z][\w&.\-]*[\w&]|\b[A-Z]\b")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\"(]\s*)$")
_COMMON_CAPITALIZED = {
    "i", "i'm", "i've", "i'd", "i'll", "what", "what's", "how", "why", "when", "where", "who",
    "which", "whose", "whom", "is", "are", "was", "were", "am", "can", "could", "do", "does",
    "did", "should", "would", "will", "shall", "may", "might", "must", "has", "have", "had",
    "please", "hi", "hello", "hey", "thanks", "thank", "the", "a", "an", "my", "our", "your",
    "in", "on", "at", "for", "to", "of", "if", "and", "or", "but", "so", "it", "its", "it's",
    "this", "that", "there", "these", "those", "any", "some", "all", "best", "good", "yes",
    "no", "ok", "okay", "help", "tell", "give", "show", "explain", "get", "find", "let", "let's",
    "need", "want", "quora", "q", "also", "dear", "sir", "madam",
}  # fmt: skip


def entities(text: str) -> set[str]:
    """Likely names (lower-cased): capitalized or all-caps words that are not sentence-initial
    function words, joined when adjacent ("New York" → ``"new york"``)."""
    found: list[tuple[int, int, str]] = []
    for match in _CAPITALIZED.finditer(text):
        word = match.group(0).rstrip(".")
        lowered = word.lower()
        at_start = bool(_SENTENCE_START.search(text[: match.start()]))
        if lowered in _COMMON_CAPITALIZED or lowered in _MONTHS or lowered in _WEEKDAYS:
            continue
        if at_start and not (word.isupper() and len(word) > 1) and not _inner_capital(word):
            continue  # any word is capitalized at the start of a sentence
        found.append((match.start(), match.end(), lowered))
    merged: list[str] = []
    last_end = -2
    for start, end, word in found:
        if merged and text[last_end:start] == " ":
            merged[-1] += " " + word
        else:
            merged.append(word)
        last_end = end
    return set(merged)


_entities = lru_cache(maxsize=8192)(entities)


def _inner_capital(word: str) -> bool:
    return any(c.isupper() for c in word[1:])  # iPhone, McDonald, PayPal


def _mentions(text: str, entity: str) -> bool:
    """True if ``entity`` (or a word-prefix variant, India/Indian) occurs in ``text``."""
    lowered = text.lower()
    for part in entity.split():
        stem = part if len(part) < 5 else part[: max(4, len(part) - 2)]
        if not re.search(r"\b" + re.escape(stem), lowered):
            return False
    return True


def entity_swap(query: str, candidate: str) -> tuple[str, str] | None:
    """A name of each text that the other text does not mention ("paris", "london"), or None.

    Both sides must bring a name of their own: "Who is Trump?" against "Who is Donald Trump?"
    only adds detail, while "flights to Paris" against "flights to London" swaps one name for
    another. All-lower-case text shows no names, so this guard cannot see them there.
    """
    only_query = [e for e in _entities(query) if not _mentions(candidate, e)]
    only_candidate = [e for e in _entities(candidate) if not _mentions(query, e)]
    if only_query and only_candidate:
        return only_query[0], only_candidate[0]
    return None


# -------------------------------------------------------------------------- swapped roles
#: Function words left out when comparing the content of two questions.
_STOPWORDS = {
    "a", "an", "the", "of", "to", "in", "on", "at", "for", "from", "by", "with", "and", "or",
    "but", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "can", "could",
    "should", "would", "will", "shall", "may", "might", "must", "i", "me", "my", "we", "our",
    "you", "your", "he", "she", "it", "its", "they", "them", "their", "this", "that", "these",
    "those", "what", "which", "who", "whom", "whose", "how", "why", "when", "where", "there",
    "here", "as", "if", "than", "then", "so", "about", "into", "over", "under", "after", "before",
    "also", "just", "very", "more", "most", "some", "any", "all", "each", "other", "such", "only",
    "own", "same", "too",
}  # fmt: skip
#: Words between two names that make their order irrelevant ("X and Y", "X vs Y").
_SYMMETRIC = {"and", "or", "vs", "versus", "&", "/", "nor", "between", "v", "plus", "+"}
_TOKEN = re.compile(r"[\w+#]+(?:\.[\w+#]+)*")


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _words(text: str) -> list[str]:
    return _TOKEN.findall(text.lower().translate(_APOSTROPHES).replace("'s", " "))


def _content(words: list[str]) -> list[str]:
    """Stems of the words that are not stop words (tested before stemming: "does" is one)."""
    return [_stem(w) for w in words if w not in _STOPWORDS]


def role_swap(query: str, candidate: str) -> tuple[str, str] | None:
    """Two words that trade places between otherwise identical questions, or None.

    "Why do Russians dislike Poles?" and "Why do Poles dislike Russians?" have the same words
    and nearly the same embedding, but not the same answer. Only an exact exchange of two
    content words counts, and only when something other than "and", "or", "vs"… stands
    between them in both texts ("the difference between X and Y" is symmetric) and they are not
    side by side ("career change" / "change your career" is a paraphrase).
    """
    q_words, c_words = _words(query), _words(candidate)
    q_content, c_content = _content(q_words), _content(c_words)
    if len(q_content) != len(c_content) or q_content == c_content:
        return None
    differences = {(a, b) for a, b in zip(q_content, c_content, strict=True) if a != b}
    if len(differences) != 2:
        return None
    (x, y), (y2, x2) = differences
    if x != x2 or y != y2:
        return None
    q_tokens, c_tokens = [_stem(w) for w in q_words], [_stem(w) for w in c_words]
    q_between, c_between = _between(q_tokens, x, y), _between(c_tokens, x, y)
    if q_between & c_between and not _SYMMETRIC & (q_between | c_between):
        return x, y  # the same verb or preposition links them, the other way round
    return None


def _between(tokens: list[str], x: str, y: str) -> set[str]:
    """The words between ``x`` and ``y``. Both texts must share one (the pivot: "dislike",
    "to"), or the swap is a rephrasing: "tell my location to david" / "tell david my location"."""
    i, j = sorted((tokens.index(x), tokens.index(y)))
    return set(tokens[i + 1 : j])


# ------------------------------------------------------------------------------- the guards
#: Per-text features, cached: a lookup checks one query against several candidates through
#: every guard and the pair scorer, and candidates recur across lookups. Read-only results.
cached_numbers = lru_cache(maxsize=8192)(numbers)
cached_codes = lru_cache(maxsize=8192)(codes)
cached_dates = lru_cache(maxsize=8192)(dates)
cached_entities = lru_cache(maxsize=8192)(entities)


@dataclass(frozen=True, slots=True)
class Block:
    """Why a hit was refused."""

    guard: str
    """Which guard blocked: a name of :data:`GUARDS` (``number``, ``negation``, ``order``…)."""
    detail: str
    """What differed, for logs and the ``X-Thrifty-Guard`` header."""


def _number_guard(query: str, candidate: str) -> Block | None:
    q, c = cached_numbers(query), cached_numbers(candidate)
    if q != c:
        return Block("number", f"{_show(q)} vs {_show(c)}")
    q_codes, c_codes = cached_codes(query), cached_codes(candidate)
    if q_codes != c_codes:
        return Block("number", f"{_show(q_codes)} vs {_show(c_codes)}")
    return None


def _date_guard(query: str, candidate: str) -> Block | None:
    q, c = cached_dates(query), cached_dates(candidate)
    if q and c and set(q) != set(c):  # a date on one side only is detail ("… today")
        return Block("date", f"{_show(q)} vs {_show(c)}")
    return None


def _negation_guard(query: str, candidate: str) -> Block | None:
    flipped = traps.polarity_flip(query, candidate)
    return Block("negation", f"{flipped!r} negated on one side") if flipped else None


def _antonym_guard(query: str, candidate: str) -> Block | None:
    pair = traps.antonym_pair(query, candidate)
    return Block("antonym", f"{pair[0]} vs {pair[1]}") if pair else None


def _comparison_guard(query: str, candidate: str) -> Block | None:
    flip = traps.comparison_flip(query, candidate)
    return Block("comparison", flip) if flip else None


def _scope_guard(query: str, candidate: str) -> Block | None:
    flip = traps.scope_flip(query, candidate)
    return Block("scope", flip) if flip else None


def _pronoun_guard(query: str, candidate: str) -> Block | None:
    swap = traps.pronoun_swap(query, candidate)
    return Block("pronoun", f"person {swap}") if swap else None


def _entity_guard(query: str, candidate: str) -> Block | None:
    swap = entity_swap(query, candidate) or traps.place_swap(query, candidate)
    return Block("entity", f"{swap[0]} vs {swap[1]}") if swap else None


def _order_guard(query: str, candidate: str) -> Block | None:
    swap = role_swap(query, candidate)
    if swap:
        return Block("order", f"{swap[0]} … {swap[1]} swapped")
    moved = traps.direction_swap(query, candidate)
    return Block("order", f"{moved[0]} changes direction") if moved else None


def _show(values: Iterable[str]) -> str:
    return "{" + ", ".join(sorted(values)) + "}"


#: Every guard by name (strategies as data); :class:`Guards` runs the chosen ones in order.
GUARDS: dict[str, Callable[[str, str], Block | None]] = {
    "number": _number_guard,
    "date": _date_guard,
    "negation": _negation_guard,
    "entity": _entity_guard,
    "order": _order_guard,
    "antonym": _antonym_guard,
    "comparison": _comparison_guard,
    "scope": _scope_guard,
    "pronoun": _pronoun_guard,
}


class Guards(Guard):
    """Runs the chosen guards; the first that finds a difference blocks the hit.

    Args:
        enabled: guard names from :data:`GUARDS` (default: all of them).

    Example:
        >>> Guards().check("refund for order 123", "refund for order 124")
        Block(guard='number', detail='{123} vs {124}')
    """

    def __init__(self, enabled: Iterable[str] | None = None) -> None:
        names = list(GUARDS) if enabled is None else list(enabled)
        unknown = [n for n in names if n not in GUARDS]
        if unknown:
            raise ConfigError(f"unknown guards {unknown}; use some of: {', '.join(GUARDS)}")
        self.enabled = tuple(names)
        self._checks = [GUARDS[n] for n in names]

    def check(self, query: str, candidate: str) -> Block | None:
        """The first difference that forbids serving ``candidate``'s answer to ``query``."""
        if query == candidate:
            return None
        for guard in self._checks:
            block = guard(query, candidate)
            if block is not None:
                return block
        return None

    def blocks(self, query: str, candidate: str) -> str | None:
        """The name of the guard that forbids the hit (``"number"``…), or None."""
        block = self.check(query, candidate)
        return None if block is None else block.guard

    def allows(self, query: str, candidate: str) -> bool:
        return self.check(query, candidate) is None

    def __repr__(self) -> str:
        return f"Guards({list(self.enabled)!r})"
