"""Generate labelled hard pairs for the semantic cache, one group per trap type (seeded).

    python benchmarks/gen_hard_pairs.py --part dev    # banking77 train + support first half
    python benchmarks/gen_hard_pairs.py --part test   # banking77 test + support second half

Each pair is ``{a, b, label, trap, source}``: ``a`` is a real customer query of the shared data,
``b`` either another real query or ``a`` edited by one trap; ``label`` 1 when ``b`` deserves
``a``'s answer. Traps that keep the answer: ``near_repeat`` (case, punctuation, a filler word,
one typo) and ``paraphrase`` (another query of the same intent that the embedder puts at cosine
≥ 0.8). Traps that change it (label 0): ``negation``, ``entity_swap``, ``number_change``,
``date_change``, ``scope_change``, ``antonym``, ``direction_swap``, ``comparison_flip``,
``pronoun_swap``, and ``near_intent`` (the nearest query of *another* intent at cosine ≥ 0.8).
When a query has nothing to edit for a trap (no number, no "from … to"), the trap adds the same
phrase to both sides and varies it ("… for amounts under £40" / "… over £40"), so each trap has
enough pairs. The ``dev`` part trains and tunes (``train_pair_scorer.py``); the ``test`` part is
only for reporting (``bench_semantic_hard.py``). Written to
``benchmarks/out/hard_pairs_PART.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_data import OUT, embed_cached, load_banking77, load_support

PER_TRAP = 250
AUX_NEGATIVE = {
    "is": "isn't", "are": "aren't", "was": "wasn't", "were": "weren't", "do": "don't",
    "does": "doesn't", "did": "didn't", "will": "won't", "would": "wouldn't", "should": "shouldn't",
    "has": "hasn't", "have": "haven't", "could": "couldn't",
}  # fmt: skip
ENTITIES = [
    ["uk", "us", "spain", "france", "germany", "china", "india", "canada", "mexico", "italy"],
    ["euro", "dollar", "pound", "yen", "gbp", "usd", "eur", "peso", "rupee", "franc"],
    ["visa", "mastercard", "paypal", "amazon", "apple pay", "google pay", "amex", "ebay"],
    ["london", "paris", "berlin", "madrid", "new york", "tokyo", "dublin", "rome"],
]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
DATE_SWAPS = [
    DAYS,
    ["today", "yesterday", "tomorrow"],
    ["weekend", "weekday"],
    ["weekends", "weekdays"],
    ["last week", "next week", "this week"],
    ["last month", "next month", "this month"],
    ["january", "february", "march", "april", "june", "july", "august", "september"],
]
SCOPES = [("within", "after"), ("before", "after"), ("during", "after"), ("inside", "outside")]
PERIODS = ["the cooling-off period", "the trial", "the statement date", "the deadline", "30 days"]
COMPARISONS = [("under", "over"), ("less than", "more than"), ("below", "above")]
COMPARISONS += [("at most", "at least"), ("fewer than", "more than")]
DIRECTIONS = [("savings", "current account"), ("euros", "pounds"), ("word", "pdf")]
DIRECTIONS += [("my card", "my account"), ("usd", "gbp"), ("paypal", "my bank"), ("jpg", "png")]
ANTONYM_EXTRA = [("refundable", "non-refundable"), ("safe", "unsafe"), ("included", "excluded")]
ANTONYM_EXTRA += [("accepted", "declined"), ("approved", "rejected"), ("valid", "invalid")]
ANTONYM_EXTRA += [("active", "inactive"), ("available", "unavailable"), ("possible", "impossible")]
FILLERS = ["please", "hi,", "hello,", "thanks", "quick question:", "hey"]


def _word_sub(text: str, old: str, new: str) -> str:
    return re.sub(r"\b" + re.escape(old) + r"\b", new, text, count=1, flags=re.IGNORECASE)


def _has(text: str, word: str) -> bool:
    return re.search(r"\b" + re.escape(word) + r"\b", text, flags=re.IGNORECASE) is not None


def near_repeat(a: str, rng: random.Random) -> tuple[str, str] | None:
    choice = rng.randrange(4)
    if choice == 0:
        return a, a.lower().rstrip("?.! ") if a != a.lower() else a.capitalize() + "?"
    if choice == 1:
        return a, f"{rng.choice(FILLERS)} {a[0].lower()}{a[1:]}"
    if choice == 2:
        return a, a.rstrip("?.! ") + rng.choice(["?", "??", ".", "!"])
    words = a.split()
    long = [i for i, w in enumerate(words) if len(w) > 5 and w.isalpha()]
    if not long:
        return None
    i = rng.choice(long)
    j = rng.randrange(1, len(words[i]) - 2)
    w = words[i]
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]  # one transposition typo
    return a, " ".join(words)


def negation(a: str, rng: random.Random) -> tuple[str, str] | None:
    if re.search(r"\bnot\b|n't\b|\bnever\b", a, re.IGNORECASE):
        return None  # negating a negated text makes a double negation, not a trap
    for aux, neg in AUX_NEGATIVE.items():
        main_verb = r"\b" + aux + r"\b(?=\s+(?:it|that|this|so|the|a|an|my|to)\b|\W*$)"
        if _has(a, aux) and not re.search(main_verb, a, re.IGNORECASE):
            return a, _word_sub(a, aux, neg)
    for verb in ("want", "need", "have", "see", "know", "like", "understand", "receive"):
        if re.search(r"\bi " + verb + r"\b", a, re.IGNORECASE):
            return a, re.sub(r"\bi " + verb, f"I don't {verb}", a, count=1, flags=re.IGNORECASE)
    return None


def entity_swap(a: str, rng: random.Random) -> tuple[str, str] | None:
    for group in ENTITIES:
        present = [e for e in group if _has(a, e)]
        if present:
            old = present[0]
            return a, _word_sub(a, old, rng.choice([e for e in group if e != old]))
    group = rng.choice(ENTITIES)
    x, y = rng.sample(group, 2)
    base = a.rstrip("?.! ")
    return f"{base} in {x}?", f"{base} in {y}?"


def number_change(a: str, rng: random.Random) -> tuple[str, str] | None:
    match = re.search(r"\d+", a)
    if match:
        value = int(match.group(0))
        new = str(value + rng.choice([1, 2, 5, 10]) if value < 1000 else value * 2)
        return a, a[: match.start()] + new + a[match.end() :]
    n = rng.choice([2, 3, 5, 7, 10, 14, 20, 30, 50, 100])
    base = a.rstrip("?.! ")
    unit = rng.choice(["days", "euros", "transactions", "cards", "pounds"])
    return f"{base} for {n} {unit}?", f"{base} for {n * rng.choice([2, 3, 10])} {unit}?"


def date_change(a: str, rng: random.Random) -> tuple[str, str] | None:
    for group in DATE_SWAPS:
        present = [d for d in group if _has(a, d)]
        if present:
            return a, _word_sub(a, present[0], rng.choice([d for d in group if d != present[0]]))
    group = rng.choice(DATE_SWAPS)
    x, y = rng.sample(group, 2)
    base = a.rstrip("?.! ")
    return f"{base} on {x}?", f"{base} on {y}?"


def scope_change(a: str, rng: random.Random) -> tuple[str, str] | None:
    for x, y in SCOPES:
        if _has(a, x):
            return a, _word_sub(a, x, y)
    x, y = rng.choice(SCOPES)
    period, base = rng.choice(PERIODS), a.rstrip("?.! ")
    return f"{base} {x} {period}?", f"{base} {y} {period}?"


def antonym(a: str, rng: random.Random) -> tuple[str, str] | None:
    from thrifty.semantic.traps import antonym_table

    table = antonym_table()
    for x, y in rng.sample(ANTONYM_EXTRA, len(ANTONYM_EXTRA)):
        if _has(a, x):
            return a, _word_sub(a, x, y)
    words = [w for w in re.findall(r"[a-z]+", a.lower()) if len(w) > 3 and w in table]
    if words:
        word = rng.choice(words)
        return a, _word_sub(a, word, rng.choice(sorted(table[word])))
    x, y = rng.choice(ANTONYM_EXTRA)
    base = a.rstrip("?.! ")
    return f"{base} if it is {x}?", f"{base} if it is {y}?"


def direction_swap(a: str, rng: random.Random) -> tuple[str, str] | None:
    match = re.search(r"\bfrom (\w+) to (\w+)", a, re.IGNORECASE)
    if match:
        x, y = match.group(1), match.group(2)
        return a, a[: match.start()] + f"from {y} to {x}" + a[match.end() :]
    x, y = rng.choice(DIRECTIONS)
    verb = rng.choice(["transfer money", "move funds", "convert", "switch"])
    tail = rng.choice(["", " please", " today", " with the app"])
    return f"how do i {verb} from {x} to {y}{tail}", f"how do i {verb} from {y} to {x}{tail}"


def comparison_flip(a: str, rng: random.Random) -> tuple[str, str] | None:
    for x, y in COMPARISONS:
        if _has(a, x):
            return a, _word_sub(a, x, y)
    x, y = rng.choice(COMPARISONS)
    n, base = rng.choice([10, 20, 50, 100, 500, 1000]), a.rstrip("?.! ")
    sign = rng.choice(["£", "$", "€"])
    return f"{base} for amounts {x} {sign}{n}?", f"{base} for amounts {y} {sign}{n}?"


def pronoun_swap(a: str, rng: random.Random) -> tuple[str, str] | None:
    if _has(a, "my"):
        return a, re.sub(r"\bmy\b", rng.choice(["your", "his", "her"]), a, flags=re.IGNORECASE)
    if _has(a, "your"):
        return a, re.sub(r"\byour\b", "my", a, flags=re.IGNORECASE)
    return None


EDITS: dict[str, tuple[int, Callable[[str, random.Random], tuple[str, str] | None]]] = {
    "near_repeat": (1, near_repeat),
    "negation": (0, negation),
    "entity_swap": (0, entity_swap),
    "number_change": (0, number_change),
    "date_change": (0, date_change),
    "scope_change": (0, scope_change),
    "antonym": (0, antonym),
    "direction_swap": (0, direction_swap),
    "comparison_flip": (0, comparison_flip),
    "pronoun_swap": (0, pronoun_swap),
}


def sources(part: str) -> list[tuple[str, str, str]]:
    """``(text, intent, source)`` of the part: dev = banking77 train + support first half."""
    support = load_support()
    half = len(support) // 2
    if part == "dev":
        bank, sup = load_banking77("train"), support[:half]
    else:
        bank, sup = load_banking77("test"), support[half:]
    return [(t, i, "banking77") for t, i in bank] + [(t, i, "support") for t, i in sup]


def neighbour_pairs(
    rows: list[tuple[str, str, str]], part: str, rng: random.Random
) -> list[dict[str, object]]:
    """Real pairs at cosine ≥ 0.8: each query's nearest other query (same source)."""
    out: list[dict[str, object]] = []
    for source in ("banking77", "support"):
        texts = sorted({t for t, _, s in rows if s == source})
        intent = {t: i for t, i, s in rows if s == source}
        vectors = embed_cached(f"{source}-{part}-hard", texts)
        for start in range(0, len(texts), 1024):
            sims = vectors[start : start + 1024] @ vectors.T
            for row, i in enumerate(range(start, min(start + 1024, len(texts)))):
                sims[row, i] = -1.0
                j = int(np.argmax(sims[row]))
                if sims[row, j] < 0.8:
                    continue
                same = intent[texts[i]] == intent[texts[j]]
                trap = "paraphrase" if same else "near_intent"
                out.append({"a": texts[j], "b": texts[i], "label": int(same), "trap": trap,
                            "source": source})  # fmt: skip
    rng.shuffle(out)
    return out


def generate(part: str, per_trap: int = PER_TRAP, seed: int = 13) -> list[dict[str, object]]:
    rng = random.Random(f"{seed}-{part}")
    rows = sources(part)
    pairs: list[dict[str, object]] = []
    for trap, (label, edit) in EDITS.items():
        made: list[dict[str, object]] = []
        for text, _, source in rng.sample(rows, len(rows)):
            edited = edit(text, rng)
            if edited is None or (edited[0].lower() == edited[1].lower() and label == 0):
                continue
            made.append({"a": edited[0], "b": edited[1], "label": label, "trap": trap,
                         "source": source})  # fmt: skip
            if len(made) >= per_trap:
                break
        pairs += made
    neighbours = neighbour_pairs(rows, part, rng)
    for trap in ("paraphrase", "near_intent"):
        pairs += [p for p in neighbours if p["trap"] == trap][
            : per_trap * (2 if trap == "paraphrase" else 1)
        ]
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["dev", "test"], default="dev")
    parser.add_argument("--per-trap", type=int, default=PER_TRAP)
    args = parser.parse_args()
    pairs = generate(args.part, args.per_trap)
    path = OUT / f"hard_pairs_{args.part}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    counts = Counter(str(p["trap"]) for p in pairs)
    print(f"{len(pairs)} pairs -> {path}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
