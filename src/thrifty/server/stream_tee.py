"""One upstream stream, read once, relayed to every identical streamed request meanwhile.

Plain requests in flight are coalesced by the cache (``Cache.aget_or_compute``); a stream
cannot wait for a finished answer without losing its point, so identical streams share the
upstream stream itself. A background task reads the upstream into a chunk list; each request
reads that list from the start and then follows it as it grows, so a latecomer gets what was
already said at once and the rest as it comes. The upstream call is closed when the last reader
goes away (every client disconnected), and finishes for the others when only some do.

A tee exists from the moment its leader misses, before the upstream sent anything
(:meth:`StreamTee.pending`): identical requests that arrive while the upstream still thinks
wait on it (:meth:`StreamTee.opened`) rather than calling the upstream themselves. If the leader
fails before its first chunk (:meth:`StreamTee.abandon`), they are told so and one of them leads
the next try, so none inherits the leader's HTTP error or its client's disconnect.
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
        upstream: AsyncIterator[Chunk] | None,
        first: Chunk | None,
        on_end: Callable[[list[Chunk], bool], None],
        *,
        owner: object = None,
    ) -> None:
        self.owner = owner
        """Who leads a pending tee (the request that will start it)."""
        self.chunks: list[Chunk] = []
        self.done = False
        self.complete = False
        self.error: Exception | None = None
        self.closing = False
        """No new reader may join (the upstream failed or is being given up)."""
        self._on_end = on_end
        self._readers = 0
        self._grew = asyncio.Event()
        self._opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._upstream: AsyncIterator[Chunk]  # set by start()
        if upstream is not None:
            self.start(upstream, first)

    @classmethod
    def pending(cls, owner: object) -> StreamTee:
        """A tee whose upstream is not open yet: ``owner`` starts it (:meth:`start`) once its
        first chunk came, or gives it up (:meth:`abandon`)."""
        return cls(None, None, _no_end, owner=owner)

    def start(
        self,
        upstream: AsyncIterator[Chunk],
        first: Chunk | None,
        on_end: Callable[[list[Chunk], bool], None] | None = None,
    ) -> None:
        """Pump ``upstream`` (its ``first`` chunk already read) to every reader."""
        if self._opened.is_set():
            raise RuntimeError("this stream tee was already started or abandoned")
        self._upstream = upstream
        if on_end is not None:
            self._on_end = on_end
        if first is not None:
            self.chunks.append(first)
        self._task = asyncio.get_running_loop().create_task(self._pump())
        self._opened.set()

    def abandon(self) -> bool:
        """The leader failed (or stopped) before the first chunk: the waiting followers are
        released (:meth:`opened` answers False) and nobody may join any more. False when the
        tee was already started or abandoned (then nothing changes)."""
        if self._opened.is_set():
            return False
        self.done = self.closing = True
        self._opened.set()
        self._wake()
        return True

    async def opened(self) -> bool:
        """Wait for the first chunk: True once the upstream is relayed, False when the leader
        gave up before it (the caller should then try by itself)."""
        await self._opened.wait()
        return self._task is not None

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
        await self._opened.wait()
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
            if not self._readers and not self.done and self._task is not None:
                self.closing = True  # nobody listens: hang up on the upstream
                self._task.cancel()

    async def wait(self) -> None:
        """Until the upstream is done and ``on_end`` ran (or the leader gave up before it)."""
        await self._opened.wait()
        if self._task is not None:
            await asyncio.shield(self._task)


def _no_end(chunks: list[Chunk], complete: bool) -> None:
    """A pending tee's ``on_end`` until its leader starts it with its own."""
