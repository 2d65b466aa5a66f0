"""The one protocol every model provider implements (OpenAI wire shapes in and out)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any


class Provider(ABC):
    """An upstream that answers OpenAI-shaped requests with OpenAI-shaped responses.

    Bodies are plain dicts as the OpenAI HTTP API takes and returns them, so the gateway, the
    batch engine and the library share one path. Errors are raised as
    :class:`~thrifty.errors.ProviderError` subclasses carrying the upstream status.
    """

    #: A short name for logs, metrics and ``X-Thrifty-Route``.
    name: str = "provider"
    #: ``gen_ai.system`` of its spans (OpenTelemetry GenAI conventions).
    gen_ai_system: str = "openai"

    @abstractmethod
    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/chat/completions`` without streaming: a ``chat.completion`` object."""

    @abstractmethod
    def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """``POST /v1/chat/completions`` with ``stream: true``: ``chat.completion.chunk`` dicts."""

    async def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/completions``; providers without it raise ProviderError."""
        from thrifty.errors import ProviderError

        raise ProviderError(f"{self.name} does not serve /v1/completions")

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/embeddings``; providers without it raise ProviderError."""
        from thrifty.errors import ProviderError

        raise ProviderError(f"{self.name} does not serve /v1/embeddings")

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and models."""


class LocalModelProvider(Provider):
    """A model computed in this process (no upstream): it can be loaded ahead of traffic."""

    #: The runtime's name as people read it (``thrifty demo`` prints it).
    runtime: str = "local"

    @abstractmethod
    async def aload(self) -> None:
        """Load the model now (in a worker thread) rather than on the first request."""
