"""``ThriftyCompressor``: LangChain's ``BaseDocumentCompressor`` over :func:`thrifty.compress`.

    from langchain_classic.retrievers import ContextualCompressionRetriever
    retriever = ContextualCompressionRetriever(
        base_compressor=ThriftyCompressor(ratio=0.4), base_retriever=my_retriever
    )

The retrieved documents are compressed together (the ratio and the floor apply to all of them,
so a document that does not matter can go entirely while the one that answers keeps more), in
their retrieved order; each kept document carries its metadata plus the token counts. Documents
with nothing kept are left out, as LangChain's own filters do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field

from thrifty.compression import Compressor
from thrifty.compression.compressor import DEFAULT_MIN_TOKENS, DEFAULT_MODEL

#: Metadata keys added to each kept document.
TOKENS_BEFORE = "thrifty_tokens_before"
TOKENS_AFTER = "thrifty_tokens_after"


class ThriftyCompressor(BaseDocumentCompressor):
    """Keeps the sentences of the retrieved documents that the query needs.

    Args:
        ratio: keep at most this share of the documents' tokens (default: half, when
            ``budget_tokens`` is not set either).
        budget_tokens: keep at most this many tokens.
        min_tokens: never keep fewer tokens than this.
        model: the target model the counts are reported for.
        compressor: a :class:`thrifty.compression.Compressor` (its embedder and document
            cache); default: the default embedder (the static table distilled from the local
            MiniLM) with the process-wide cache. A document's ``metadata["title"]``, when it
            is a string, counts towards which document is about the query.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    ratio: float | None = None
    budget_tokens: int | None = None
    min_tokens: int = DEFAULT_MIN_TOKENS
    model: str = DEFAULT_MODEL
    compressor: Compressor = Field(default_factory=Compressor)

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """The documents with only the sentences ``query`` needs; empty ones left out."""
        result = self.compressor.compress(
            query,
            [
                {"text": doc.page_content, "title": _title(doc.metadata.get("title"))}
                for doc in documents
            ],
            ratio=self.ratio,
            budget_tokens=self.budget_tokens,
            min_tokens=self.min_tokens,
            model=self.model,
        )
        out: list[Document] = []
        for doc, compressed in zip(documents, result.documents, strict=True):
            if not compressed.text:
                continue
            metadata: dict[str, Any] = {
                **doc.metadata,
                TOKENS_BEFORE: compressed.tokens_before,
                TOKENS_AFTER: compressed.tokens_after,
            }
            out.append(Document(page_content=compressed.text, metadata=metadata, id=doc.id))
        return out


def _title(value: Any) -> str | None:
    return value if isinstance(value, str) else None
