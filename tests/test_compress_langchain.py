"""ThriftyCompressor: LangChain's ContextualCompressionRetriever works with it unchanged."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("langchain_classic")

from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from thrifty.compression import Compressor, DocumentCache
from thrifty.integrations.langchain_compress import (
    TOKENS_AFTER,
    TOKENS_BEFORE,
    ThriftyCompressor,
)
from thrifty.semantic.embedder import HashingEmbedder

DOCS = [
    Document(
        page_content="The Eiffel Tower is in Paris. Construction of the tower ended in 1889. "
        "It is 330 metres tall.",
        metadata={"source": "tower"},
        id="t",
    ),
    Document(
        page_content="Bananas are yellow fruits. They grow in tropical places. Apples are red.",
        metadata={"source": "fruit"},
        id="f",
    ),
]


class FixedRetriever(BaseRetriever):
    """A retriever that returns the same documents for every query (no index, no network)."""

    docs: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self.docs


@pytest.fixture
def compressor() -> ThriftyCompressor:
    inner = Compressor(HashingEmbedder(), cache=DocumentCache())
    return ThriftyCompressor(ratio=0.4, min_tokens=0, compressor=inner)


def test_the_retriever_returns_compressed_documents(compressor: ThriftyCompressor) -> None:
    retriever = ContextualCompressionRetriever(
        base_compressor=compressor, base_retriever=FixedRetriever(docs=DOCS)
    )
    docs = retriever.invoke("When did construction of the Eiffel tower end?")
    assert docs, "the relevant sentence must be kept"
    assert docs[0].id == "t"
    assert "Construction of the tower ended in 1889." in docs[0].page_content
    total_before = sum(d.metadata[TOKENS_BEFORE] for d in docs)
    total_after = sum(d.metadata[TOKENS_AFTER] for d in docs)
    assert total_after < total_before
    assert docs[0].metadata["source"] == "tower"


def test_documents_with_nothing_kept_are_left_out(compressor: ThriftyCompressor) -> None:
    tight = compressor.model_copy(update={"ratio": None, "budget_tokens": 12})
    docs = tight.compress_documents(DOCS, "When did construction of the Eiffel tower end?")
    assert [d.id for d in docs] == ["t"]
    assert docs[0].page_content == "Construction of the tower ended in 1889."


def test_the_async_path_gives_the_same_documents(compressor: ThriftyCompressor) -> None:
    query = "When did construction of the Eiffel tower end?"
    sync = compressor.compress_documents(DOCS, query)
    async_ = asyncio.run(compressor.acompress_documents(DOCS, query))
    assert [d.page_content for d in async_] == [d.page_content for d in sync]


def test_a_title_in_the_metadata_picks_the_document(compressor: ThriftyCompressor) -> None:
    """Two documents alike but for their titles: ``metadata["title"]`` decides."""
    twins = [
        Document(page_content="It was finished in 1958.", metadata={"title": "Tokyo Tower"}),
        Document(page_content="It was finished in 1889.", metadata={"title": "Eiffel Tower"}),
    ]
    tight = compressor.model_copy(update={"ratio": None, "budget_tokens": 8})
    docs = tight.compress_documents(twins, "When was the Eiffel Tower finished?")
    assert [d.page_content for d in docs] == ["It was finished in 1889."]
    assert docs[0].metadata["title"] == "Eiffel Tower"
