"""The one protocol every model provider implements (OpenAI wire shapes in and out)."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
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
    """A model computed in this process (no upstream): it can be loaded ahead of traffic.

    One lock guards the model: local runtimes are not safe to call from two threads at once.
    Subclasses set ``_lock`` in ``__init__`` and implement :meth:`load`.
    """

    #: The runtime's name as people read it (``thrifty demo`` prints it).
    runtime: str = "local"
    #: What the runtime raises when it rejects one request (e.g. a prompt over the context).
    rejected_errors: tuple[type[Exception], ...] = (ValueError,)
    _lock: threading.Lock

    @abstractmethod
    def load(self) -> Any:
        """Load the model once (callers hold ``self._lock``) and return the runtime's handle."""

    @abstractmethod
    def _chat_blocking(self, body: dict[str, Any]) -> dict[str, Any]:
        """:meth:`chat`, computed in the calling thread."""

    @abstractmethod
    def _completion_blocking(self, body: dict[str, Any]) -> dict[str, Any]:
        """:meth:`completion`, computed in the calling thread."""

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A ``chat.completion`` with real ``usage`` from the local model (in a worker thread:
        generation would otherwise hold the event loop)."""
        return await asyncio.to_thread(self._chat_blocking, body)

    async def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """A ``text_completion`` (``/v1/completions``) from the local model."""
        return await asyncio.to_thread(self._completion_blocking, body)

    async def aload(self) -> None:
        """Load the model now (in a worker thread) rather than on the first request."""

        def load_locked() -> None:
            with self._lock:
                self.load()

        await asyncio.to_thread(load_locked)

    def _run_locked(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(model)`` under the lock; a request the runtime rejects is a ProviderError."""
        from thrifty.errors import ProviderError

        with self._lock:
            model = self.load()
            try:
                return fn(model)
            except self.rejected_errors as exc:
                raise ProviderError(f"local model rejected the request: {exc}") from exc
