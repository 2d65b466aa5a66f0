"""Sentence splitting for compression: whole sentences, never a cut number, code block or table
row, offsets that map back onto the original text."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.compression.split import split_sentences


def units(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def test_sentences_split_at_terminal_punctuation() -> None:
    assert units('He left. Did she? Yes! "Go." She went.') == [
        "He left.",
        "Did she?",
        "Yes!",
        '"Go."',
        "She went.",
    ]


def test_numbers_abbreviations_and_initials_do_not_end_a_sentence() -> None:
    text = "Dr. Smith paid $3.50 in the U.S. on Jan. 5 for 1,000.25 units. J. R. R. Tolkien wrote."
    assert units(text) == [
        "Dr. Smith paid $3.50 in the U.S. on Jan. 5 for 1,000.25 units.",
        "J. R. R. Tolkien wrote.",
    ]


def test_a_lower_case_continuation_is_not_a_new_sentence() -> None:
    assert units("It costs approx. ten euros. Then it rose.") == [
        "It costs approx. ten euros.",
        "Then it rose.",
    ]


def test_a_fenced_code_block_is_one_unit() -> None:
    code = "```python\nx = 1. \ny = 2. Z = 3\n\nprint(x)\n```"
    text = f"Before it. Run this:\n{code}\nAfter it."
    assert units(text) == ["Before it.", "Run this:", code, "After it."]


def test_each_table_row_is_one_unit() -> None:
    text = (
        "The prices follow.\n| item | price. Note |\n|---|---|\n| tea. Green | 3.50 |\nThat is all."
    )
    assert units(text) == [
        "The prices follow.",
        "| item | price. Note |",
        "|---|---|",
        "| tea. Green | 3.50 |",
        "That is all.",
    ]


def test_list_items_and_headings_start_units_but_wrapped_lines_do_not() -> None:
    text = (
        "# Title\nA sentence that wraps\nonto a second line. And another.\n1. First item.\n- Bullet"
    )
    assert units(text) == [
        "# Title",
        "A sentence that wraps\nonto a second line.",
        "And another.",
        "1. First item.",
        "- Bullet",
    ]


def test_empty_and_blank_text_have_no_units() -> None:
    assert split_sentences("") == []
    assert split_sentences(" \n\n\t ") == []


_NUMBER = st.from_regex(r"\d{1,4}([.,]\d{1,3}){0,2}", fullmatch=True)
_WORD = st.sampled_from(["the", "Tower", "cost", "e.g.", "Dr.", "U.S.", "in", "rose", "A."])
_SENTENCE = st.lists(st.one_of(_WORD, _NUMBER), min_size=1, max_size=8).map(" ".join)
_END = st.sampled_from([". ", "! ", "? ", ".\n", "\n\n", ". | a. B | 1.5 |\n"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_SENTENCE, _END), min_size=1, max_size=8))
def test_units_cover_the_text_in_order_and_never_cut_a_number(parts) -> None:
    text = "".join(s + e for s, e in parts)
    spans = split_sentences(text)
    covered: set[int] = set()
    last = 0
    for a, b in spans:
        assert last <= a < b
        assert text[a:b] == text[a:b].strip()
        covered.update(range(a, b))
        last = b
    assert all(text[i].isspace() for i in range(len(text)) if i not in covered)
    for number in re.finditer(r"\d+(?:[.,]\d+)+", text):
        assert any(a <= number.start() and number.end() <= b for a, b in spans)
