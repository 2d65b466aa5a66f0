"""Stream objects the wrapped OpenAI clients return: recording a live stream, replaying a hit.

Both behave like the SDK's ``Stream`` / ``AsyncStream``: iterate them, use them as context
managers, ``close()`` them. A recording stream stores its answer only when the upstream stream
ends normally, never when the consumer stops early or the upstream fails mid-way. What to do
with the recorded chunks is one flow (:mod:`thrifty.integrations._flow`) for both faces; the
classes here only speak the sync or the async iteration protocol.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

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


class _Delegating:
    """Attributes a stream object does not define come from the SDK stream (``response``…)."""

    _inner: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class RecordingStream(_Delegating):
    """Passes the upstream's chunks through and hands their JSON to ``on_complete`` at the end."""

    def __init__(self, inner: Any, on_complete: OnComplete, info: dict[str, Any]) -> None:
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
            run_sync(self._on_complete(chunks))
        except Exception as exc:
            _store_failed(exc)

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


class AsyncRecordingStream(_Delegating):
    """:class:`RecordingStream` for the SDK's ``AsyncStream``."""

    def __init__(self, inner: Any, on_complete: OnComplete, info: dict[str, Any]) -> None:
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
            await run_async(self._on_complete(chunks))
        except Exception as exc:
            _store_failed(exc)

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


class _Replay:
    """A cached answer's chunks, handed out one at a time until closed."""

    response = None  # no HTTP response stands behind a replay

    def __init__(self, chunks: list[Any], info: dict[str, Any]) -> None:
        self._chunks = chunks
        self._iterator = iter(chunks)
        self._thrifty = info

    def _close(self) -> None:
        self._iterator = iter(())


class ReplayStream(_Replay):
    """A cached answer replayed as SDK chunk objects (``ChatCompletionChunk``)."""

    def __iter__(self) -> Iterator[Any]:
        return self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def __enter__(self) -> ReplayStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def close(self) -> None:
        self._close()


class AsyncReplayStream(_Replay):
    """:class:`ReplayStream` for ``async for`` and ``async with``."""

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
        self._close()

    async def close(self) -> None:
        self._close()
