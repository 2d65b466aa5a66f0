"""The document cache: a known document costs no embedding, in memory or from a store; the
memory bound holds; stored analyses round-trip and corrupt ones are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thrifty.compression import Compressor, DocumentCache
from thrifty.compression.analysis import analyse
from thrifty.compression.doccache import NAMESPACE, decode, document_key, encode
from thrifty.errors import CorruptEntryError
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.store import open_store

DOCS = [
    "Mount Everest is 8,849 metres high. It lies on the border of Nepal and China. "
    "Climbers first reached the summit in 1953.",
    "The Nile flows north through eleven countries. It empties into the Mediterranean Sea. "
    "Its basin covers about 3.4 million square kilometres.",
]


class CountingEmbedder(HashingEmbedder):
    """A hashing embedder that counts the texts it really embeds (cache_size=0: no LRU)."""

    def __init__(self) -> None:
        super().__init__(cache_size=0)
        self.embedded: list[str] = []

    def _embed(self, texts: list[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return super()._embed(texts)


def test_known_titles_are_not_embedded_again() -> None:
    embedder = CountingEmbedder()
    compressor = Compressor(embedder, cache=DocumentCache())
    titled = [{"title": f"Title {i}", "text": d} for i, d in enumerate(DOCS)]
    compressor.compress("How high is Everest?", titled, ratio=0.5, min_tokens=0)
    assert {"Title 0", "Title 1"} <= set(embedder.embedded)
    seen = len(embedder.embedded)
    compressor.compress("Where does the Nile flow?", titled, ratio=0.5, min_tokens=0)
    assert embedder.embedded[seen:] == ["Where does the Nile flow?"]
    compressor.cache.clear()  # a cold start forgets titles with the documents
    compressor.compress("Where does the Nile flow?", titled, ratio=0.5, min_tokens=0)
    assert "Title 0" in embedder.embedded[seen + 1 :]


def test_a_known_document_is_not_split_or_embedded_again() -> None:
    embedder = CountingEmbedder()
    compressor = Compressor(embedder, cache=DocumentCache())
    first = compressor.compress("How high is Everest?", DOCS, ratio=0.5, min_tokens=0)
    sentences = len(embedder.embedded)
    assert sentences == 6 + 1  # six sentences and the question
    again = compressor.compress("How high is Everest?", DOCS, ratio=0.5, min_tokens=0)
    assert embedder.embedded[sentences:] == ["How high is Everest?"]
    assert again == first
    assert compressor.cache.hits == 2


def test_a_document_repeated_within_one_context_is_analysed_once() -> None:
    embedder = CountingEmbedder()
    Compressor(embedder, cache=DocumentCache()).analyses([DOCS[0], DOCS[0]])
    assert len(embedder.embedded) == 3


def test_analyses_persist_in_a_store_across_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'compress.db'}"
    first = CountingEmbedder()
    Compressor(first, cache=open_store(url)).compress(
        "Where does the Nile flow?", DOCS, ratio=0.5, min_tokens=0
    )
    second = CountingEmbedder()  # a new process: empty memory, the same store
    result = Compressor(second, cache=open_store(url)).compress(
        "Where does the Nile flow?", DOCS, ratio=0.5, min_tokens=0
    )
    assert second.embedded == ["Where does the Nile flow?"]
    assert result.tokens_after < result.tokens_before
    store = open_store(url)
    assert store.usage(NAMESPACE)[0] == 2
    assert store.usage("default")[0] == 0


def test_memory_is_bounded_in_bytes_least_recent_first() -> None:
    embedder = HashingEmbedder()
    analyses = analyse(DOCS, embedder)
    cache = DocumentCache(max_bytes=analyses[0].nbytes + analyses[1].nbytes - 1)
    keys = [document_key(embedder.name, d) for d in DOCS]
    cache.put(keys[0], analyses[0])
    cache.put(keys[1], analyses[1])
    assert len(cache) == 1
    assert cache.get(keys[0], DOCS[0]) is None
    assert cache.get(keys[1], DOCS[1]) is analyses[1]


def test_keys_depend_on_the_embedder_and_the_text() -> None:
    assert document_key("a", DOCS[0]) != document_key("b", DOCS[0])
    assert document_key("a", DOCS[0]) != document_key("a", DOCS[1])
    assert document_key("a", DOCS[0]) == document_key("a", DOCS[0])


def test_encoded_analyses_round_trip() -> None:
    (analysis,) = analyse([DOCS[0]], HashingEmbedder())
    back = decode(encode(analysis), DOCS[0])
    assert back.spans == analysis.spans
    assert back.total == analysis.total
    assert back.terms == analysis.terms
    np.testing.assert_array_equal(back.tokens, analysis.tokens)
    np.testing.assert_array_equal(back.lengths, analysis.lengths)
    np.testing.assert_array_equal(back.vectors, analysis.vectors)


def test_an_empty_document_round_trips() -> None:
    (analysis,) = analyse([""], HashingEmbedder())
    assert decode(encode(analysis), "").spans == ()


@pytest.mark.parametrize("blob", [b"", b"\x05\x00\x00\x00{bad", b"\x02\x00\x00\x00{}"])
def test_corrupt_entries_are_refused(blob: bytes) -> None:
    with pytest.raises(CorruptEntryError):
        decode(blob, DOCS[0])
