"""One upstream stream, read once, relayed to every identical streamed request meanwhile.

Plain requests in flight are coalesced by the cache (``Cache.aget_or_compute``); a stream
cannot wait for a finished answer without losing its point, so identical streams share the
upstream stream itself. A background task reads the upstream into a chunk list; each request
reads that list from the start and then follows it as it grows, so a latecomer gets what was
already said at once and the rest as it comes. The upstream call is closed when the last reader
goes away (every client disconnected), and finishes for the others when only some do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

Chunk = dict[str, Any]


class StreamTee:
    """An upstream chunk stream shared by several readers.

    Args:
        upstream: the provider's chunk iterator (closed when the tee ends).
        first: the chunk already read from it (the first one, read before the tee existed so
            that an upstream failure could still become a proper HTTP error), or None.
        on_end: called once with ``(chunks, complete)`` when the upstream is done: complete is
            False when it failed or was given up (then nothing should be stored).
    """

    def __init__(
        self,
        upstream: AsyncIterator[Chunk],
        first: Chunk | None,
        on_end: Callable[[list[Chunk], bool], None],
    ) -> None:
        self._upstream = upstream
        self.chunks: list[Chunk] = [] if first is None else [first]
        self.done = False
        self.complete = False
        self.error: Exception | None = None
        self.closing = False
        """No new reader may join (the upstream failed or is being given up)."""
        self._on_end = on_end
        self._readers = 0
        self._grew = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for chunk in self._upstream:
                self.chunks.append(chunk)
                self._wake()
            self.complete = True
        except asyncio.CancelledError:
            pass  # every reader went away
        except Exception as exc:  # the readers report it in their streams
            self.error = exc
        finally:
            self.done = True
            self.closing = not self.complete  # a complete stream can still be replayed
            self._wake()
            with contextlib.suppress(Exception):
                await asyncio.shield(self._upstream.aclose())  # type: ignore[attr-defined]
            self._on_end(self.chunks, self.complete)

    def _wake(self) -> None:
        grew, self._grew = self._grew, asyncio.Event()
        grew.set()

    async def read(self) -> AsyncIterator[Chunk]:
        """Every chunk from the first; raises the upstream's error if it failed mid-way."""
        self._readers += 1
        try:
            seen = 0
            while True:
                while seen < len(self.chunks):
                    yield self.chunks[seen]
                    seen += 1
                if self.done:
                    if self.error is not None:
                        raise self.error
                    return
                await self._grew.wait()
        finally:
            self._readers -= 1
            if not self._readers and not self.done:  # nobody listens: hang up on the upstream
                self.closing = True
                self._task.cancel()

    async def wait(self) -> None:
        """Until the upstream is done and ``on_end`` ran."""
        await asyncio.shield(self._task)
