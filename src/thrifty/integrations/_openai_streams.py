"""Stream objects the wrapped OpenAI clients return: recording a live stream, replaying a hit.

Both behave like the SDK's ``Stream`` / ``AsyncStream``: iterate them, use them as context
managers, ``close()`` them. A recording stream stores its chunks only when the upstream stream
ends normally, never when the consumer stops early or the upstream fails mid-way.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

log = logging.getLogger("thrifty.openai")

ChunkList = list[dict[str, Any]]


def dump_chunk(chunk: Any) -> dict[str, Any]:
    return chunk.model_dump(mode="json", exclude_unset=True)


class RecordingStream:
    """Passes the upstream's chunks through and hands their JSON to ``on_complete`` at the end."""

    def __init__(self, inner: Any, on_complete: Callable[[ChunkList], None], info: dict) -> None:
        self._inner = inner
        self._on_complete = on_complete
        self._thrifty = info
        self._iterator = self._record()

    def _record(self) -> Iterator[Any]:
        chunks: ChunkList = []
        for chunk in self._inner:
            chunks.append(dump_chunk(chunk))
            yield chunk
        try:
            self._on_complete(chunks)
        except Exception as exc:  # fail-open: the caller already has its answer
            log.warning("thrifty could not store a streamed answer: %s", exc)

    def __iter__(self) -> Iterator[Any]:
        return self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def __enter__(self) -> RecordingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._iterator.close()
        self._inner.close()

    def __getattr__(self, name: str) -> Any:  # response, etc. of the SDK stream
        return getattr(self._inner, name)


class AsyncRecordingStream:
    """Async twin of :class:`RecordingStream`."""

    def __init__(
        self, inner: Any, on_complete: Callable[[ChunkList], Awaitable[None]], info: dict
    ) -> None:
        self._inner = inner
        self._on_complete = on_complete
        self._thrifty = info
        self._iterator = self._record()

    async def _record(self) -> AsyncIterator[Any]:
        chunks: ChunkList = []
        async for chunk in self._inner:
            chunks.append(dump_chunk(chunk))
            yield chunk
        try:
            await self._on_complete(chunks)
        except Exception as exc:  # fail-open
            log.warning("thrifty could not store a streamed answer: %s", exc)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterator

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def __aenter__(self) -> AsyncRecordingStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._iterator.aclose()
        await self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ReplayStream:
    """A cached answer replayed as SDK chunk objects (``ChatCompletionChunk``)."""

    response = None  # no HTTP response stands behind a replay

    def __init__(self, chunks: list[Any], info: dict) -> None:
        self._chunks = chunks
        self._iterator = iter(chunks)
        self._thrifty = info

    def __iter__(self) -> Iterator[Any]:
        return self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def __enter__(self) -> ReplayStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._iterator = iter(())


class AsyncReplayStream:
    """Async twin of :class:`ReplayStream`."""

    response = None

    def __init__(self, chunks: list[Any], info: dict) -> None:
        self._chunks = chunks
        self._iterator = iter(chunks)
        self._thrifty = info

    def __aiter__(self) -> AsyncReplayStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> AsyncReplayStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._iterator = iter(())
