"""thrifty.compress: whole sentences in order, the ratio, budget and floor, per-document results,
determinism, and argument checks. The hashing embedder stands in for MiniLM here: these tests are
about the mechanics (tests/test_compress_minilm.py runs the real model)."""

from __future__ import annotations

from typing import Any

import pytest

import thrifty
from thrifty.accounting.tokens import count_text
from thrifty.compression import Compressed, Compressor, DocumentCache
from thrifty.compression.split import split_sentences
from thrifty.errors import ConfigError
from thrifty.semantic.embedder import HashingEmbedder

TOWER = (
    "The Eiffel Tower stands on the Champ de Mars in Paris. It was designed by the engineering "
    "company of Gustave Eiffel. Construction of the tower began in 1887 and ended in 1889. "
    "Its height is 330 metres, about the same as an 81-storey building. The tower has three "
    "levels for visitors, with restaurants on the first and second levels."
)
FRUIT = (
    "Bananas are elongated edible fruits produced by several kinds of large flowering plants. "
    "The fruit is variable in size, colour and firmness. Apples are grown worldwide and are the "
    "most widely grown species in the genus Malus. Oranges are citrus fruits."
)
ROME = (
    "The Colosseum is an elliptical amphitheatre in the centre of the city of Rome. It could "
    "hold an estimated 50,000 to 80,000 spectators. It was used for gladiatorial contests and "
    "public spectacles such as animal hunts."
)
QUESTION = "When was construction of the Eiffel tower finished?"


@pytest.fixture
def compressor() -> Compressor:
    return Compressor(HashingEmbedder(), cache=DocumentCache())


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def test_keeps_whole_sentences_in_their_original_order(compressor: Compressor) -> None:
    result = compressor.compress(QUESTION, [TOWER, FRUIT, ROME], ratio=0.4, min_tokens=0)
    originals = sentences(TOWER) + sentences(FRUIT) + sentences(ROME)
    kept = [s for doc in result.documents for s in sentences(doc.text)]
    assert kept, "something must be kept"
    positions = [originals.index(s) for s in kept]
    assert positions == sorted(positions)
    assert "Construction of the tower began in 1887 and ended in 1889." in result.text


def test_counts_are_tiktoken_counts_and_the_ratio_is_honoured(compressor: Compressor) -> None:
    context = [TOWER, FRUIT, ROME]
    result = compressor.compress(QUESTION, context, ratio=0.4, min_tokens=0)
    assert result.tokens_before == sum(count_text(t) for t in context)
    assert result.tokens_after == sum(count_text(d.text) for d in result.documents)
    assert result.tokens_after <= 0.4 * result.tokens_before + 2
    assert result.ratio == pytest.approx(result.tokens_after / result.tokens_before)
    assert result.saved_tokens == result.tokens_before - result.tokens_after
    assert result.model == "gpt-4o-mini"


def test_budget_tokens_caps_and_the_smaller_limit_wins(compressor: Compressor) -> None:
    by_budget = compressor.compress(QUESTION, [TOWER, FRUIT, ROME], budget_tokens=40, min_tokens=0)
    assert 0 < by_budget.tokens_after <= 42
    both = compressor.compress(
        QUESTION, [TOWER, FRUIT, ROME], ratio=0.9, budget_tokens=40, min_tokens=0
    )
    assert both.text == by_budget.text


def test_never_below_the_floor(compressor: Compressor) -> None:
    result = compressor.compress(QUESTION, [TOWER, FRUIT, ROME], ratio=0.1, min_tokens=80)
    assert result.tokens_after >= 80


def test_a_context_under_the_floor_comes_back_whole(compressor: Compressor) -> None:
    result = compressor.compress(QUESTION, TOWER, ratio=0.2, min_tokens=500)
    assert result.text == TOWER
    assert result.tokens_after == result.tokens_before
    assert result.dropped == ()


def test_a_string_context_gives_its_kept_text(compressor: Compressor) -> None:
    result = compressor.compress(QUESTION, TOWER, ratio=0.5, min_tokens=0)
    assert len(result.documents) == 1
    assert result.text == result.documents[0].text
    assert result.documents[0].id is None
    assert all(d.document == 0 for d in result.dropped)


def test_documents_keep_their_ids_and_dropped_units_are_located(compressor: Compressor) -> None:
    context: list[str | dict[str, Any]] = [
        {"id": "doc:1", "text": TOWER},
        {"id": 2, "text": FRUIT},
        ROME,
    ]
    result = compressor.compress(QUESTION, context, ratio=0.3, min_tokens=0)
    assert [d.id for d in result.documents] == ["doc:1", "2", None]
    texts = [TOWER, FRUIT, ROME]
    assert result.dropped
    for dropped in result.dropped:
        assert texts[dropped.document][dropped.start : dropped.end] == dropped.text
    kept = sum(len(sentences(d.text)) for d in result.documents)
    assert kept + len(result.dropped) == sum(len(sentences(t)) for t in texts)
    assert result.text == "\n\n".join(d.text for d in result.documents if d.text)


def test_same_input_same_output_across_fresh_compressors() -> None:
    def run() -> Compressed:
        fresh = Compressor(HashingEmbedder(), cache=DocumentCache())
        return fresh.compress(QUESTION, [TOWER, FRUIT, ROME], ratio=0.3)

    assert run() == run()


def test_a_repeated_sentence_is_kept_once(compressor: Compressor) -> None:
    repeat = "Construction of the tower began in 1887 and ended in 1889."
    result = compressor.compress(QUESTION, [TOWER, repeat + " " + FRUIT], ratio=0.5, min_tokens=0)
    assert result.text.count(repeat) == 1


def test_the_floor_may_take_a_sentence_longer_than_the_target(compressor: Compressor) -> None:
    long = "Word " * 60 + "end."
    result = compressor.compress("word", long, budget_tokens=5, min_tokens=10)
    assert result.text == long.strip()


def test_empty_documents_are_allowed(compressor: Compressor) -> None:
    result = compressor.compress(QUESTION, ["", TOWER, "  "], ratio=0.5, min_tokens=0)
    assert result.documents[0].text == ""
    assert result.documents[0].tokens_before == 0
    assert result.tokens_before == count_text(TOWER) + count_text("  ")


@pytest.mark.parametrize(
    "kwargs",
    [{"ratio": 0.0}, {"ratio": 1.5}, {"budget_tokens": -1}, {"min_tokens": -1}],
)
def test_bad_limits_are_config_errors(compressor: Compressor, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        compressor.compress(QUESTION, TOWER, **kwargs)


def test_a_document_that_is_not_text_is_a_config_error(compressor: Compressor) -> None:
    with pytest.raises(ConfigError):
        compressor.compress(QUESTION, [{"id": 1}])
    with pytest.raises(ConfigError):
        compressor.compress(QUESTION, [3])  # type: ignore[list-item]


def test_thrifty_compress_is_the_public_entry_point() -> None:
    assert thrifty.compress is thrifty.compression.compress
    result = thrifty.compression.compress(
        QUESTION, [TOWER, FRUIT], ratio=0.5, min_tokens=0, embedder=HashingEmbedder()
    )
    assert isinstance(result, Compressed)
    assert result.tokens_after < result.tokens_before
