"""thrifty.compress with its default embedder, the static table distilled from the local MiniLM:
it is what ``Compressor()`` builds, it keeps the sentence a question needs from titled
documents, and a known context costs only the question. The first run on a machine builds the
table (as ``thrifty embedder build-static`` does: a minute or more of CPU, once; later runs load it
from the cache folder), so the default is tested wherever the suite runs."""

from __future__ import annotations

import pytest

from thrifty.compression import Compressor, DocumentCache
from thrifty.compression.compressor import DEFAULT_EMBEDDER
from thrifty.errors import ProviderUnavailableError
from thrifty.server.mechanisms import CompressionSettings

CONTEXT = [
    {
        "title": "Great Barrier Reef",
        "text": "The reef lies off the coast of Queensland. It is the largest coral reef system "
        "in the world. Bleaching events have damaged large parts of it since 1998. Tourism there "
        "brings billions of dollars to Australia every year.",
    },
    {
        "title": "Photosynthesis",
        "text": "It converts light energy into chemical energy. Plants use chlorophyll to absorb "
        "sunlight. Oxygen is released as a by-product of the process.",
    },
    {
        "title": "Amazon River",
        "text": "It discharges more water than any other river. Its basin spans nine countries. "
        "The rainforest around it is home to millions of species.",
    },
]


@pytest.fixture(scope="module")
def compressor() -> Compressor:
    try:
        from thrifty.semantic.static import StaticEmbedder

        return Compressor(StaticEmbedder(), cache=DocumentCache())
    except ProviderUnavailableError as exc:  # pragma: no cover - without the semantic extra
        pytest.skip(str(exc))


def test_the_default_embedder_is_the_static_table(compressor: Compressor) -> None:
    assert DEFAULT_EMBEDDER == "static" and CompressionSettings().embedder == "static"
    default = Compressor(cache=DocumentCache())
    assert default.embedder.name == compressor.embedder.name
    assert default.embedder.name.startswith("static:")


def test_the_answer_survives_a_sixty_percent_cut(compressor: Compressor) -> None:
    result = compressor.compress(
        "How many countries does the Amazon river basin cover?", CONTEXT, ratio=0.4, min_tokens=0
    )
    assert "Its basin spans nine countries." in result.text
    assert result.tokens_after <= 0.4 * result.tokens_before + 2


def test_a_tight_budget_keeps_the_sentence_that_answers(compressor: Compressor) -> None:
    result = compressor.compress(
        "What does photosynthesis turn light into?", CONTEXT, budget_tokens=12, min_tokens=0
    )
    assert result.text.strip() == "It converts light energy into chemical energy."


def test_a_known_context_embeds_only_the_question(compressor: Compressor) -> None:
    question = "How much money does reef tourism make?"
    compressor.compress(question, CONTEXT, ratio=0.5, min_tokens=0)
    misses = compressor.embedder.cache_misses
    compressor.compress("Since when has the reef bleached?", CONTEXT, ratio=0.5, min_tokens=0)
    assert compressor.embedder.cache_misses == misses + 1
