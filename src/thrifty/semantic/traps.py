"""Detectors for the pairs an embedding puts side by side although their answers differ.

Each function compares a query with a cached question, lower-cases both (user traffic is often
typed without capitals) and returns what differs, or None. They look for a *contrast between
the two texts*, never for a word alone: "i cannot locate my phone" and "could you help me locate
my phone" both ask for help finding a phone, while "how do I cancel" and "how do I not cancel"
flip the polarity of one predicate. The traps, from hard-pair studies of the semantic cache:

- polarity: the same predicate negated in one text only (inability asked as a request for help
  is not a flip: "I can't log in" / "help me log in");
- antonyms: a word in one text whose antonym is in the other (WordNet 3.0's pairs, shipped as
  ``assets/antonyms.json.gz``, built by ``benchmarks/build_antonyms.py``, plus prefix pairs such
  as safe/unsafe, refundable/non-refundable);
- comparison: the opposite operator before a number ("under £50" / "over £50");
- scope: inside a period vs after or outside it ("within" / "after the cooling-off period");
- direction: a word that moves from a "from" to a "to" role ("savings to current" / "current to
  savings", "Word to PDF" / "PDF to Word");
- pronouns: "my" against "your" ("what's my name" / "what's your name").
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Sequence
from functools import cache, lru_cache
from importlib import resources

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'"})
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[£$€%<>→]")
_NON_PREFIX = re.compile(r"\bnon[\s-]+(?=[a-z])")


@lru_cache(maxsize=8192)
def tokens(text: str) -> tuple[str, ...]:
    """Lower-case word tokens; "non-refundable" and "non refundable" become "nonrefundable".
    Cached: a lookup compares one query with several candidates, each through every guard."""
    lowered = _NON_PREFIX.sub("non", text.lower().translate(_APOSTROPHES))
    return tuple(_TOKEN.findall(lowered.replace("->", " → ")))


@lru_cache(maxsize=32768)
def lemmas(word: str) -> frozenset[str]:
    """Crude inflection stripping, enough to match "included" with "include", "fees" with "fee";
    every candidate is kept, so a lookup never misses the right one."""
    found = {word}
    if len(word) > 4:
        if word.endswith("ies") or word.endswith("ied"):
            found.add(word[:-3] + "y")
        if word.endswith("es") or word.endswith("ed"):
            found.update((word[:-2], word[:-1]))
        elif word.endswith("s") and not word.endswith("ss"):
            found.add(word[:-1])
        if word.endswith("ing"):
            found.update((word[:-3], word[:-3] + "e"))
    return frozenset(found)


def _lemma_set(words: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for word in words:
        out |= lemmas(word)
    return out


# ------------------------------------------------------------------------------ polarity
_NEGATIONS = {
    "not", "no", "never", "none", "nothing", "neither", "nor", "without", "dont", "doesnt",
    "didnt", "isnt", "arent", "wasnt", "werent", "wont", "wouldnt", "shouldnt", "hasnt",
    "havent", "hadnt", "mustnt", "neednt", "aint", "don't", "doesn't", "didn't", "isn't",
    "aren't", "wasn't", "weren't", "won't", "wouldn't", "shouldn't", "hasn't", "haven't",
    "hadn't", "mustn't", "needn't", "ain't", "n't",
}  # fmt: skip
#: Cues of inability: in a support request "I can't X" asks the same as "help me X".
_INABILITY = {
    "cannot", "cant", "can't", "couldnt", "couldn't", "unable", "fail", "fails", "failed",
    "failing",
}  # fmt: skip
#: Words that make a text a request for help with its predicate ("how do I", "help me").
_REQUEST = {"how", "help", "want", "need", "like", "please", "possible", "way", "trying", "try"}
_REQUEST |= {"must", "trouble", "troubles", "problem", "problems", "issue", "issues"}
#: Words skipped between a negation cue and the predicate it negates.
_SKIP = {
    "i", "you", "we", "they", "he", "she", "it", "me", "my", "your", "our", "the", "a", "an",
    "to", "be", "been", "being", "is", "am", "are", "was", "were", "do", "does", "did", "have",
    "has", "had", "able", "even", "yet", "still", "really", "seem", "seems", "get", "got",
    "ever", "any", "this", "that", "there", "so", "just", "also", "longer",
}  # fmt: skip


@lru_cache(maxsize=8192)
def negated_predicates(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """The predicates a text negates, split into (plain negations, inabilities): the first
    content word after each cue ("didn't receive my card" → ``receive``)."""
    words = tokens(text)
    plain: set[str] = set()
    unable: set[str] = set()
    for i, word in enumerate(words):
        kind = plain if word in _NEGATIONS else unable if word in _INABILITY else None
        if kind is None:
            continue
        for following in words[i + 1 : i + 7]:
            if following in _NEGATIONS or following in _INABILITY:
                break
            if following not in _SKIP and not following.endswith("ly"):
                kind |= lemmas(following)
                break
    return frozenset(plain), frozenset(unable)


@lru_cache(maxsize=8192)
def _cues(words: Sequence[str]) -> int:
    return sum(w in _NEGATIONS or w in _INABILITY or w.endswith("n't") for w in words)


def _negative(words: Sequence[str]) -> bool:
    return _cues(words) > 0


def _awaits(words: Sequence[str], negated: Sequence[str]) -> bool:
    """A question of when something happens ("when will my card arrive") asks what "my card
    has not arrived yet" reports: the event has not happened yet."""
    pending = bool(_PENDING.intersection(negated))
    return pending and ("when" in words or ("how" in words and "long" in words))


_PENDING = {"yet", "still", "hasn't", "haven't", "hasnt", "havent", "has", "have"}


def _has_to(text: str) -> bool:
    return re.search(r"\b(?:have|has|had|got) to\b", text.lower()) is not None


def polarity_flip(query: str, candidate: str) -> str | None:
    """A predicate negated in one text and affirmed in the other, or None."""
    if _cues(tokens(query)) == _cues(tokens(candidate)):
        return None  # as many negations on each side: a rephrasing, whichever words they bear on
    for one, other in ((query, candidate), (candidate, query)):
        other_words = tokens(other)
        plain, unable = negated_predicates(one)
        other_plain, other_unable = negated_predicates(other)
        affirmed = _lemma_set(other_words) - other_plain - other_unable
        flipped = plain & affirmed
        if flipped and not _awaits(other_words, tokens(one)):
            return min(flipped)
        if unable & affirmed and not _REQUEST.intersection(other_words) and not _has_to(other):
            return min(unable & affirmed)
    return None


# ------------------------------------------------------------------------------ antonyms
_PREFIXES = ("non", "un", "in", "im", "il", "ir", "dis")
_FUNCTION_WORDS = {
    "in", "out", "on", "off", "up", "down", "over", "under", "before", "after", "no", "yes",
    "all", "some", "more", "less", "most", "least", "first", "last", "here", "there", "this",
    "that", "come", "go", "give", "take", "get", "have", "make", "do", "be", "can", "will",
}  # fmt: skip


#: Opposite outcomes and actions of transactional traffic that WordNet does not pair.
_DECISIONS = [
    ("approve", "reject"), ("approve", "decline"), ("accept", "decline"), ("credit", "debit"),
    ("enable", "disable"), ("activate", "deactivate"), ("upgrade", "downgrade"),
    ("deposit", "withdraw"), ("upload", "download"), ("login", "logout"), ("allow", "block"),
]  # fmt: skip


@cache
def antonym_table() -> dict[str, frozenset[str]]:
    """Word → its antonyms, from the shipped WordNet table (and a few decision words), both
    directions."""
    raw = resources.files("thrifty.semantic").joinpath("assets/antonyms.json.gz").read_bytes()
    table: dict[str, set[str]] = {}
    for a, b in json.loads(gzip.decompress(raw))["pairs"] + _DECISIONS:
        if a in _FUNCTION_WORDS or b in _FUNCTION_WORDS:
            continue  # particles and light verbs: their senses are too many to contrast
        table.setdefault(a, set()).add(b)
        table.setdefault(b, set()).add(a)
    return {word: frozenset(others) for word, others in table.items()}


def _opposites(word: str) -> set[str]:
    table = antonym_table()
    found: set[str] = set()
    for lemma in lemmas(word):
        found |= table.get(lemma, frozenset())
        for prefix in _PREFIXES:
            if lemma.startswith(prefix) and len(lemma) - len(prefix) >= 4:
                found.add(lemma[len(prefix) :])  # unsafe → safe
        found.update(p + lemma for p in ("un", "non", "in", "dis") if len(lemma) >= 4)
    return found


def antonym_pair(query: str, candidate: str) -> tuple[str, str] | None:
    """A word of one text whose antonym stands in the other text only, or None."""
    q_words, c_words = tokens(query), tokens(candidate)
    if _negative(q_words) != _negative(c_words):
        return None  # "not right" / "wrong", "don't remember" / "forget": the same claim
    q_lemmas, c_lemmas = _lemma_set(q_words), _lemma_set(c_words)
    for word in q_words:
        if len(word) < 3 or lemmas(word) & c_lemmas:
            continue
        for opposite in _opposites(word):
            if opposite in c_lemmas and opposite not in q_lemmas:
                return word, opposite
    return None


# ---------------------------------------------------------------------------- comparison
_LESS = {"under", "below", "less", "fewer", "lower", "cheaper", "most", "max", "maximum", "upto"}
_MORE = {"over", "above", "more", "greater", "higher", "least", "min", "minimum", "exceeding"}
_AMOUNT = re.compile(r"^(?:\d+|[£$€]|one|two|three|four|five|ten|twenty|fifty|hundred)$")


def comparisons(text: str) -> set[str]:
    """``"<"`` and ``">"`` for the comparison operators of a text that bear on an amount
    ("under £50", "more than 3", "at least 2 days"); "under my name" has none."""
    words = tokens(text)
    found: set[str] = set()
    for i, word in enumerate(words):
        side = "<" if word in _LESS else ">" if word in _MORE else None
        if side is None:
            continue
        ahead = words[i + 1 : i + 4]
        if (ahead and ahead[0] == "than") or any(_AMOUNT.match(w) for w in ahead[:2]):
            if word in {"most", "least"} and (i == 0 or words[i - 1] != "at"):
                continue
            found.add(side)
    return found


def comparison_flip(query: str, candidate: str) -> str | None:
    q, c = comparisons(query), comparisons(candidate)
    if q and c and q != c:
        return f"{''.join(sorted(q))} vs {''.join(sorted(c))}"
    return None


# --------------------------------------------------------------------------------- scope
_INSIDE = {"within", "inside", "during", "before", "prior", "until", "till"}
_OUTSIDE = {"after", "outside", "beyond"}


def scopes(text: str) -> set[str]:
    words = set(tokens(text))
    found = set()
    if words & _INSIDE:
        found.add("inside")
    if words & _OUTSIDE:
        found.add("outside")
    return found


def scope_flip(query: str, candidate: str) -> str | None:
    """ "within" in one text where the other says "after" (each side one the other lacks)."""
    q, c = scopes(query), scopes(candidate)
    if q - c and c - q:
        return f"{min(q - c)} vs {min(c - q)}"
    return None


# ----------------------------------------------------------------------------- direction
_SOURCE = {"from"}
_TARGET = {"to", "into", "onto", "→", "towards", "toward"}


def roles(text: str) -> dict[str, str]:
    """Content word → ``"source"`` or ``"target"`` when a directional preposition governs it
    ("from savings to current" → savings: source, current: target)."""
    words = tokens(text)
    found: dict[str, str] = {}
    for i, word in enumerate(words):
        role = "source" if word in _SOURCE else "target" if word in _TARGET else None
        if role is None:
            continue
        for following in words[i + 1 : i + 4]:
            if following in _SOURCE or following in _TARGET:
                break
            if following not in _SKIP and following not in {"my", "your", "the", "a", "an"}:
                found.setdefault(following, role)
                break
    return found


def direction_swap(query: str, candidate: str) -> tuple[str, str] | None:
    """A word that is the source in one text and the target in the other, or None. With a
    "from" on neither side, "X to Y" against "Y to X" counts as well (Word→PDF / PDF→Word)."""
    q, c = roles(query), roles(candidate)
    full = len(set(q.values())) == 2 and len(set(c.values())) == 2
    for word, role in q.items() if full else ():
        if c.get(word) not in (None, role):
            return word, role  # "from A to B" both sides: "ship to X" / "order from X" is not
    q_words, c_words = tokens(query), tokens(candidate)
    q_pivot, c_pivot = _pivot(q_words), _pivot(c_words)
    if q_pivot and c_pivot and q_pivot[0] == c_pivot[1] and q_pivot[1] == c_pivot[0]:
        return q_pivot[0], "source"
    return None


def _pivot(words: Sequence[str]) -> tuple[str, str] | None:
    """(X, Y) of an "X to Y" in a text: the content words around its one target preposition."""
    spots = [i for i, w in enumerate(words) if w in _TARGET]
    if len(spots) != 1 or not 0 < spots[0] < len(words) - 1:
        return None
    i = spots[0]
    before = [w for w in words[:i] if w not in _SKIP][-1:]
    after = [w for w in words[i + 1 :] if w not in _SKIP][:1]
    return (before[0], after[0]) if before and after else None


# ------------------------------------------------------------------------------ pronouns
_PERSONS = {"my": "1", "mine": "1", "our": "1", "ours": "1", "your": "2", "yours": "2"}
_PERSONS |= {"his": "3", "her": "3", "their": "3"}


def possessors(text: str) -> set[str]:
    """Grammatical persons of the possessives of a text ("my" → 1, "your" → 2)."""
    return {_PERSONS[w] for w in tokens(text) if w in _PERSONS}


def pronoun_swap(query: str, candidate: str) -> str | None:
    """ "my" in one text where the other has "your" instead, in otherwise the same words, or None.
    Support traffic says "your app" of the company and "my account" of the customer: only a
    swap in the same question ("what's my name" / "what's your name") counts."""
    q, c = possessors(query), possessors(candidate)
    q_words = {w for w in tokens(query) if w not in _PERSONS and w not in _SKIP}
    c_words = {w for w in tokens(candidate) if w not in _PERSONS and w not in _SKIP}
    overlap = len(q_words & c_words) / max(1, len(q_words | c_words))
    if q - c and c - q and overlap >= 0.75:
        return f"{min(q - c)} vs {min(c - q)}"
    return None


# -------------------------------------------------------------------------------- places
@cache
def gazetteer() -> dict[str, str]:
    """Lower-case name → canonical name: countries, cities of a million people or more, US
    states and currencies (``assets/gazetteer.json.gz``, built by
    ``benchmarks/build_gazetteer.py`` from GeoNames)."""
    raw = resources.files("thrifty.semantic").joinpath("assets/gazetteer.json.gz").read_bytes()
    names: dict[str, str] = json.loads(gzip.decompress(raw))["names"]
    return names


@lru_cache(maxsize=8192)
def places(text: str) -> frozenset[str]:
    """Canonical names of the places and currencies a text mentions, in any case
    ("send money to new york in usd" → {"new york", "currency dollar"})."""
    names = gazetteer()
    words = [w.replace("'", "") for w in tokens(text.replace("-", " "))]
    found: set[str] = set()
    i = 0
    while i < len(words):
        for size in (3, 2, 1):
            name = " ".join(words[i : i + size])
            if name in names:
                found.add(names[name])
                i += size
                break
        else:
            i += 1
    return frozenset(found)


def place_swap(query: str, candidate: str) -> tuple[str, str] | None:
    """A place or currency of each text that the other does not mention ("spain" / "france"),
    or None; one added on one side only is detail."""
    q, c = places(query), places(candidate)
    if q - c and c - q:
        return min(q - c), min(c - q)
    return None
