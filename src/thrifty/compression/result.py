"""What a compression returns: the kept text, per document, with the token counts and what went."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Dropped:
    """One unit left out, located in its document so a caller can show or restore it."""

    document: int
    """Index of the document in the context (0 for a string context)."""
    start: int
    """Character offset of the unit in that document."""
    end: int
    """Character offset just past the unit."""
    text: str
    """The unit's text."""


@dataclass(frozen=True, slots=True)
class CompressedDocument:
    """One document of the context after compression."""

    id: str | None
    """The document's ``id`` when it was given as ``{"id", "text"}``."""
    text: str
    """The kept units in their original order (empty when none was kept)."""
    tokens_before: int
    """tiktoken count of the original document."""
    tokens_after: int
    """tiktoken count of :attr:`text`."""


@dataclass(frozen=True, slots=True)
class Compressed:
    """The result of :func:`thrifty.compress`."""

    text: str
    """The compressed context: the kept text of each document that kept any, separated by a
    blank line (for a string context: its kept text)."""
    documents: tuple[CompressedDocument, ...]
    """Every document of the context, in order, compressed."""
    tokens_before: int
    """tiktoken count of the original documents."""
    tokens_after: int
    """tiktoken count of the compressed documents."""
    dropped: tuple[Dropped, ...]
    """The units left out, in document order."""
    model: str
    """The target model the counts are reported for."""

    @property
    def ratio(self) -> float:
        """``tokens_after / tokens_before`` (1.0 for an empty context)."""
        return self.tokens_after / self.tokens_before if self.tokens_before else 1.0

    @property
    def saved_tokens(self) -> int:
        """Prompt tokens the compression saves."""
        return self.tokens_before - self.tokens_after
