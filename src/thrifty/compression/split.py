"""Sentence splitting that never cuts a number, a fenced code block or a table row.

Compression keeps or drops whole units, so a unit boundary inside ``3.14``, inside a code fence
or across a Markdown table row would hand the model half a fact. The splitter is a few regular
expressions rather than a library: it runs on every unseen document on the cold path (the cached
path never calls it), and pysbd-style rule engines cost milliseconds per paragraph where this costs
microseconds; the special cases that matter here (fences, tables, list items) are structural and
need rules of their own anyway.

Units are returned as ``(start, end)`` character offsets into the original text, trimmed of
surrounding whitespace, in order and non-overlapping, so callers can rebuild the kept text with
its original separators and map answer offsets onto units.
"""

from __future__ import annotations

import re

#: A fenced code block (``` or ~~~), kept as one unit whatever it holds.
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
#: A blank line: a paragraph boundary.
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
#: A line that is one unit, never split inside: a Markdown table row or heading.
_WHOLE_LINE = re.compile(r"^[ \t]*(?:\|.*\||#{1,6}\s.*)[ \t]*$")
#: A line that starts a new block: a list item.
_BLOCK_START = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)])\s")
#: A sentence end: terminal punctuation, closing quotes or brackets, then whitespace.
_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+")
#: What may start the next sentence.
_NEXT = re.compile(r"[\"'“‘(\[]?[A-Z0-9À-Ý]")
#: The word before a period.
_LAST_WORD = re.compile(r"([\w.]+)\.$")

#: Words that end with a period without ending the sentence (lower case, no final period).
ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt vs etc e.g i.e cf al fig figs no nos vol vols ed eds pp
    inc ltd co corp dept est approx jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k
    u.n a.m p.m ph.d b.a m.a gen col lt sgt capt gov rev ft op ca c""".split()  # noqa: SIM905 - a word list reads best as words
)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` offsets of the sentences and structural units of ``text``, in order."""
    units: list[tuple[int, int]] = []
    pos = 0
    for fence in _FENCE.finditer(text):
        _split_prose(text, pos, fence.start(), units)
        _append(text, fence.start(), fence.end(), units)
        pos = fence.end()
    _split_prose(text, pos, len(text), units)
    return units


def _split_prose(text: str, start: int, end: int, units: list[tuple[int, int]]) -> None:
    """Paragraphs, then blocks (table rows, headings, list items), then sentences."""
    pos = start
    for gap in _PARAGRAPH.finditer(text, start, end):
        _split_paragraph(text, pos, gap.start(), units)
        pos = gap.end()
    _split_paragraph(text, pos, end, units)


def _split_paragraph(text: str, start: int, end: int, units: list[tuple[int, int]]) -> None:
    block = start
    line = start
    while line < end:
        stop = text.find("\n", line, end)
        stop = end if stop < 0 else stop
        row = text[line:stop]
        if _WHOLE_LINE.match(row):
            _split_block(text, block, line, units)
            _append(text, line, stop, units)
            block = stop
        elif line > block and _BLOCK_START.match(row):
            _split_block(text, block, line, units)
            block = line
        line = stop + 1
    _split_block(text, block, end, units)


def _split_block(text: str, start: int, end: int, units: list[tuple[int, int]]) -> None:
    pos = start
    for match in _END.finditer(text, start, end):
        cut = match.end()
        if cut >= end or not _NEXT.match(text, cut):
            continue
        word = _LAST_WORD.search(text, pos, match.start() + 1)
        if word is not None and (
            _is_abbreviation(word.group(1)) or _is_list_marker(text, pos, word.start())
        ):
            continue
        _append(text, pos, cut, units)
        pos = cut
    _append(text, pos, end, units)


def _is_abbreviation(word: str) -> bool:
    lowered = word.lower()
    return lowered in ABBREVIATIONS or (len(word) == 1 and word.isalpha() and word.isupper())


def _is_list_marker(text: str, unit_start: int, word_start: int) -> bool:
    """True for the ``1.`` that opens a numbered item: nothing but blanks before it."""
    return text[word_start].isdigit() and not text[unit_start:word_start].strip()


def _append(text: str, start: int, end: int, units: list[tuple[int, int]]) -> None:
    """Add ``[start, end)`` trimmed of whitespace, unless nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        units.append((start, end))
