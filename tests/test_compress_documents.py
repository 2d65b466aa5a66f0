"""Document-level evidence in compression: a document's title and its BM25 score as a whole lift
its sentences (a sentence that says "It was finished in 1889" names its subject only through
the document it sits in). The hashing embedder stands in for a real one: these tests are about
the mechanics (benchmarks/bench_compress.py measures what it is worth)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from thrifty.compression import Compressor, DocumentCache, Weights
from thrifty.compression.scoring import Units, score
from thrifty.errors import ConfigError
from thrifty.semantic.embedder import HashingEmbedder

QUESTION = "When was the Eiffel Tower finished?"
# The same sentences about two towers: nothing but the title says which one is asked about.
TOKYO = {"title": "Tokyo Tower", "text": "Work began in 1957. It was finished in 1958."}
EIFFEL = {"title": "Eiffel Tower", "text": "Work began in 1887. It was finished in 1889."}


@pytest.fixture
def compressor() -> Compressor:
    return Compressor(HashingEmbedder(), cache=DocumentCache())


def test_the_title_picks_the_document_the_question_is_about(compressor: Compressor) -> None:
    result = compressor.compress(QUESTION, [TOKYO, EIFFEL], budget_tokens=8, min_tokens=0)
    assert result.text.strip() == "It was finished in 1889."


def test_without_titles_the_tie_goes_to_the_earlier_document(compressor: Compressor) -> None:
    untitled = [{k: v for k, v in d.items() if k != "title"} for d in (TOKYO, EIFFEL)]
    result = compressor.compress(QUESTION, untitled, budget_tokens=8, min_tokens=0)
    assert result.text.strip() == "It was finished in 1958."


def test_titles_are_not_part_of_the_kept_text(compressor: Compressor) -> None:
    result = compressor.compress(QUESTION, [TOKYO, EIFFEL], ratio=1.0, min_tokens=0)
    assert "Tower" not in result.text
    assert [d.text for d in result.documents] == [TOKYO["text"], EIFFEL["text"]]


def test_one_titled_document_compresses_as_without_its_title(compressor: Compressor) -> None:
    text = "Work began in 1887. The tower was finished in 1889. It is 330 metres tall."
    titled = compressor.compress(QUESTION, [{"text": text, "title": "Eiffel Tower"}], ratio=0.4)
    plain = compressor.compress(QUESTION, [text], ratio=0.4)
    assert titled.text == plain.text


def test_a_title_must_be_text(compressor: Compressor) -> None:
    with pytest.raises(ConfigError, match="title"):
        compressor.compress(QUESTION, [{"text": "Some text.", "title": 3}])


def test_the_document_score_lifts_every_sentence_of_the_matching_document() -> None:
    """Only the document-level BM25 weight on: units score by their document's terms."""
    units = Units(
        vectors=np.zeros((4, 2), dtype=np.float32),
        terms=[Counter(), Counter(), Counter(), Counter()],
        lengths=np.ones(4, dtype=np.float32),
        tokens=np.ones(4, dtype=np.int32),
        bounds=np.array([0, 2, 4]),
        doc_terms=[Counter({"banana": 3}), Counter({"eiffel": 1, "tower": 2})],
        doc_lengths=np.array([3.0, 3.0], dtype=np.float32),
    )
    w = Weights(lexical=0.0, neighbour=0.0, document=0.0, document_lexical=0.4, title=0.0)
    scores = score(np.zeros(2, dtype=np.float32), Counter({"eiffel": 1}), units, w)
    assert scores.tolist() == pytest.approx([0.0, 0.0, 0.4, 0.4])
    w_off = Weights(lexical=0.0, neighbour=0.0, document=0.0, document_lexical=0.0, title=0.0)
    off = score(np.zeros(2, dtype=np.float32), Counter({"eiffel": 1}), units, w_off)
    assert off.tolist() == [0.0, 0.0, 0.0, 0.0]
