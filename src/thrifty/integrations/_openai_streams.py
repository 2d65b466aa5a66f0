"""Stream objects the wrapped OpenAI clients return: recording a live stream, replaying a hit.

Both behave like the SDK's ``Stream`` / ``AsyncStream``: iterate them, use them as context
managers, ``close()`` them. A recording stream stores its answer only when the upstream stream
ends normally, never when the consumer stops early or the upstream fails mid-way. What to do
with the recorded chunks is one flow (:mod:`thrifty.integrations._flow`) for both faces; the
classes here only speak the sync or the async iteration protocol.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any, Self

from thrifty.integrations._flow import Flow, run_async, run_sync

log = logging.getLogger("thrifty.openai")

ChunkList = list[dict[str, Any]]
#: What a finished stream's chunks go to: a flow that stores them.
OnComplete = Callable[[ChunkList], Flow[None]]


def dump_chunk(chunk: Any) -> dict[str, Any]:
    return chunk.model_dump(mode="json", exclude_unset=True)


def _store_failed(exc: Exception) -> None:
    # fail-open: the caller already has its answer
    log.warning("thrifty could not store a streamed answer: %s", exc)


class _SyncStream:
    """The SDK ``Stream`` protocol over ``_iterator`` (a generator)."""

    _iterator: Generator[Any, None, None]

    def __iter__(self) -> Iterator[Any]:
        return self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._iterator.close()


class _AsyncStream:
    """The SDK ``AsyncStream`` protocol over ``_iterator`` (an async generator)."""

    _iterator: AsyncGenerator[Any, None]

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterator

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._iterator.aclose()


class _Recording:
    """A live SDK stream passed through, its chunks kept for ``on_complete`` at the end."""

    def __init__(self, inner: Any, on_complete: OnComplete, info: dict[str, Any]) -> None:
        self._inner = inner
        self._on_complete = on_complete
        self._thrifty = info
        self._chunks: ChunkList = []
        self._iterator = self._record()

    def _record(self) -> Any:
        raise NotImplementedError

    def _keep(self, chunk: Any) -> Any:
        self._chunks.append(dump_chunk(chunk))
        return chunk

    def __getattr__(self, name: str) -> Any:  # response, etc. of the SDK stream
        return getattr(self._inner, name)


class RecordingStream(_Recording, _SyncStream):
    """Passes the upstream's chunks through and hands their JSON to ``on_complete`` at the end."""

    def _record(self) -> Generator[Any, None, None]:
        yield from map(self._keep, self._inner)
        try:
            run_sync(self._on_complete(self._chunks))
        except Exception as exc:
            _store_failed(exc)

    def close(self) -> None:
        super().close()
        self._inner.close()


class AsyncRecordingStream(_Recording, _AsyncStream):
    """:class:`RecordingStream` for the SDK's ``AsyncStream``."""

    async def _record(self) -> AsyncGenerator[Any, None]:
        async for chunk in self._inner:
            yield self._keep(chunk)
        try:
            await run_async(self._on_complete(self._chunks))
        except Exception as exc:
            _store_failed(exc)

    async def close(self) -> None:
        await super().close()
        await self._inner.close()


class ReplayStream(_SyncStream):
    """A cached answer replayed as SDK chunk objects (``ChatCompletionChunk``)."""

    response = None  # no HTTP response stands behind a replay

    def __init__(self, chunks: list[Any], info: dict[str, Any]) -> None:
        self._chunks = chunks
        self._thrifty = info
        self._iterator = (chunk for chunk in chunks)


class AsyncReplayStream(_AsyncStream):
    """:class:`ReplayStream` for ``async for`` and ``async with``."""

    response = None

    def __init__(self, chunks: list[Any], info: dict[str, Any]) -> None:
        self._chunks = chunks
        self._thrifty = info
        self._iterator = _replay(chunks)


async def _replay(chunks: list[Any]) -> AsyncGenerator[Any, None]:
    for chunk in chunks:
        yield chunk
