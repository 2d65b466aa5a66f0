"""thrifty.compress on the real local embedder (MiniLM int8 on onnxruntime): it finds the
sentence a question needs when the words differ, and a known document costs only the question."""

from __future__ import annotations

import pytest

from thrifty.compression import Compressor, DocumentCache
from thrifty.errors import ProviderUnavailableError

CONTEXT = [
    "The Great Barrier Reef lies off the coast of Queensland. It is the largest coral reef "
    "system in the world. Coral bleaching events have damaged large parts of it since 1998. "
    "Tourism there brings billions of dollars to Australia every year.",
    "Photosynthesis converts light energy into chemical energy. Plants use chlorophyll to "
    "absorb sunlight. Oxygen is released as a by-product of the process.",
    "The Amazon river discharges more water than any other river. Its basin spans nine "
    "countries. The rainforest around it is home to millions of species.",
]


@pytest.fixture(scope="module")
def compressor() -> Compressor:
    try:
        return Compressor("minilm", cache=DocumentCache())
    except ProviderUnavailableError as exc:  # pragma: no cover - without the semantic extra
        pytest.skip(str(exc))


def test_a_reworded_question_keeps_the_right_document(compressor: Compressor) -> None:
    result = compressor.compress(
        "How do leaves turn sunshine into food?", CONTEXT, budget_tokens=20, min_tokens=0
    )
    assert [bool(d.text) for d in result.documents] == [False, True, False]
    assert "Photosynthesis converts light energy into chemical energy." in result.text


def test_the_answer_and_its_neighbour_survive_a_sixty_percent_cut(compressor: Compressor) -> None:
    result = compressor.compress(
        "How much money does reef tourism make?", CONTEXT, ratio=0.4, min_tokens=0
    )
    assert "Tourism there brings billions of dollars to Australia every year." in result.text
    assert result.tokens_after <= 0.4 * result.tokens_before + 2


def test_a_known_context_embeds_only_the_question(compressor: Compressor) -> None:
    compressor.compress("What does the Amazon basin span?", CONTEXT, ratio=0.5, min_tokens=0)
    misses = compressor.embedder.cache_misses
    compressor.compress("How many countries share the basin?", CONTEXT, ratio=0.5, min_tokens=0)
    assert compressor.embedder.cache_misses == misses + 1
