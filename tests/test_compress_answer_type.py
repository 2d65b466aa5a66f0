"""The expected answer type and stemmed terms in compression: a "when" question lifts the
sentences that hold a date, a "how many" question those that hold a number, and BM25 matches
"released" with "release". The hashing embedder stands in for a real one: these tests are about
the mechanics (benchmarks/bench_compress.py measures what they are worth)."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pytest

from thrifty.compression import Compressor, DocumentCache, Weights
from thrifty.compression.answer_type import DATE, NUMBER, expected_kind, unit_kinds
from thrifty.compression.lexical import stem, terms
from thrifty.compression.scoring import Units, score
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.store import open_store


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("when did the botswana currency first come into circulation", DATE),
        ("When was the Eiffel Tower finished?", DATE),
        ("in what year did the war end", DATE),
        ("the treaty was signed in which year", DATE),
        ("how many moons does mars have", NUMBER),
        ("How long is the Nile?", NUMBER),
        ("what percentage of the earth is water", NUMBER),
        ("who sang the song", 0),
        ("where was the film shot", 0),
        ("what is the capital of france", 0),
        ("", 0),
    ],
)
def test_the_kind_of_answer_a_question_asks_for(question: str, kind: int) -> None:
    assert expected_kind(question) == kind


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("The pula was introduced in 1976.", DATE | NUMBER),
        ("It premiered on June 22.", DATE | NUMBER),
        ("It premiered in June.", DATE),
        ("Built in the 19th century.", DATE | NUMBER),
        ("Mars has two moons.", NUMBER),
        ("The river is 6,650 km long.", NUMBER),
        ("The pula replaced the rand at par.", 0),
        ("", 0),
    ],
)
def test_the_kinds_of_answer_a_sentence_holds(text: str, kinds: int) -> None:
    assert unit_kinds(text) == kinds


def test_the_answer_type_lifts_only_units_of_the_asked_kind() -> None:
    units = Units(
        vectors=np.zeros((3, 2), dtype=np.float32),
        terms=[Counter(), Counter(), Counter()],
        lengths=np.ones(3, dtype=np.float32),
        tokens=np.ones(3, dtype=np.int32),
        bounds=np.array([0, 3]),
        kinds=np.array([0, DATE | NUMBER, NUMBER], dtype=np.uint8),
    )
    w = Weights(lexical=0.0, neighbour=0.0, document=0.0, answer_type=0.4)
    question = np.zeros(2, dtype=np.float32)
    assert score(question, Counter(), units, w, DATE).tolist() == pytest.approx([0, 0.4, 0])
    assert score(question, Counter(), units, w, NUMBER).tolist() == pytest.approx([0, 0.4, 0.4])
    assert score(question, Counter(), units, w, 0).tolist() == [0.0, 0.0, 0.0]
    off = Weights(lexical=0.0, neighbour=0.0, document=0.0, answer_type=0.0)
    assert score(question, Counter(), units, off, DATE).tolist() == [0.0, 0.0, 0.0]


# Two sentences the hashing embedder and BM25 score alike for the question: only the date
# tells which one answers "when".
QUESTION = "When was the pula put into circulation?"
CONTEXT = [
    "The pula was put into circulation by the central bank.",
    "Coins of the pula were put into circulation in 1976.",
]


def test_a_when_question_keeps_the_sentence_with_the_date() -> None:
    compressor = Compressor(HashingEmbedder(), cache=DocumentCache())
    kept = compressor.compress(QUESTION, CONTEXT, budget_tokens=14, min_tokens=0)
    assert "1976" in kept.text
    assert "central bank" not in kept.text


def test_kinds_come_back_with_an_analysis_read_from_a_store(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'docs.db'}")
    first = Compressor(HashingEmbedder(), cache=DocumentCache(store=store))
    first.compress(QUESTION, CONTEXT, ratio=0.5, min_tokens=0)
    again = Compressor(HashingEmbedder(), cache=DocumentCache(store=store))  # memory empty
    analyses = again.analyses(CONTEXT)
    assert again.cache.hits == 2
    assert [a.kinds.tolist() for a in analyses] == [[0], [DATE | NUMBER]]


def test_terms_are_stems() -> None:
    assert terms("The season was released; filming ended") == Counter(
        {"season": 1, "releas": 1, "film": 1, "end": 1}
    )
    assert terms("when will the season be released") & terms("The release of the season") == (
        Counter({"season": 1, "releas": 1})
    )
    assert terms("The classes") == Counter({"class": 1})


def test_stems_are_the_same_from_many_threads() -> None:
    words = [f"running{i}" for i in range(200)] + ["connections", "generously"] * 50
    expected = [stem(w) for w in words]
    results: list[list[str]] = []

    def work() -> None:
        results.append([stem(w) for w in words])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4
