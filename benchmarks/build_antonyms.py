"""Build ``semantic/assets/antonyms.json.gz``: WordNet 3.0's antonym pairs as a compact table.

The antonym guard needs a lexical resource, and no wheel on PyPI ships WordNet's data (``wn``
and NLTK download it at run time, which thrifty never does). Debian's ``wordnet-base`` package
carries the WordNet 3.0 database files, so this script reads them once, at development time, and
writes every direct antonym pair (the ``!`` pointers of nouns, verbs, adjectives and adverbs),
single words only, lower-cased, as a sorted list of ``[word, antonym]`` pairs. The table is tiny
(tens of KB gzipped) and is shipped with thrifty under WordNet's licence (see assets/NOTICE).

Usage::

    apt-get install wordnet-base
    python benchmarks/build_antonyms.py [--wordnet /usr/share/wordnet]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

OUT = Path(__file__).parents[1] / "src/thrifty/semantic/assets/antonyms.json.gz"
POS_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "s": "data.adj", "r": "data.adv"}


def _synsets(folder: Path) -> dict[tuple[str, int], tuple[list[str], list[tuple[int, str, int]]]]:
    """(pos, offset) → (words, antonym pointers as (source word no., target pos, target...))."""
    table: dict[tuple[str, int], tuple[list[str], list[tuple[int, str, int]]]] = {}
    for name in sorted(set(POS_FILES.values())):
        for line in (folder / name).read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue  # the licence header
            fields = line.split(" | ", 1)[0].split()
            offset, pos, count = int(fields[0]), fields[2], int(fields[3], 16)
            words = [fields[4 + 2 * i] for i in range(count)]
            at = 4 + 2 * count
            pointers = []
            for i in range(int(fields[at])):
                symbol, target, target_pos, source_target = fields[at + 1 + 4 * i : at + 5 + 4 * i]
                if symbol == "!":
                    source, goal = int(source_target[:2], 16), int(source_target[2:], 16)
                    pointers.append((source, target_pos + ":" + target, goal))
            table[("a" if pos == "s" else pos, offset)] = (words, pointers)
    return table


def _clean(word: str) -> str:
    return word.split("(")[0].lower()  # adjectives carry markers: "long(a)"


def build(folder: Path) -> list[list[str]]:
    synsets = _synsets(folder)
    pairs: set[tuple[str, str]] = set()
    for words, pointers in synsets.values():
        for source, target, goal in pointers:
            target_pos, target_offset = target.split(":")
            target_pos = "a" if target_pos == "s" else target_pos
            target_words = synsets[(target_pos, int(target_offset))][0]
            a, b = _clean(words[source - 1]), _clean(target_words[goal - 1])
            if "_" in a or "_" in b or "-" in a or "-" in b or a == b:
                continue  # multi-word expressions cannot be matched word by word
            pairs.add((min(a, b), max(a, b)))
    return [list(pair) for pair in sorted(pairs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    pairs = build(args.wordnet)
    payload = json.dumps(
        {"source": "WordNet 3.0 (Princeton)", "pairs": pairs}, separators=(",", ":")
    )
    args.out.write_bytes(gzip.compress(payload.encode(), mtime=0))
    print(f"{len(pairs)} antonym pairs -> {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
