"""StreamTee: one upstream stream, several readers, the upstream closed when nobody listens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from thrifty.errors import ProviderError
from thrifty.server.stream_tee import StreamTee


class Upstream:
    def __init__(self, n: int, *, fail_at: int | None = None, delay: float = 0.01) -> None:
        self.n, self.fail_at, self.delay = n, fail_at, delay
        self.closed = False

    def __aiter__(self) -> AsyncIterator[dict]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[dict]:
        try:
            for i in range(self.n):
                await asyncio.sleep(self.delay)
                if i == self.fail_at:
                    raise ProviderError("upstream broke")
                yield {"i": i}
        finally:
            self.closed = True


async def _all(tee: StreamTee, after: float = 0.0) -> list[int]:
    await asyncio.sleep(after)
    return [chunk["i"] async for chunk in tee.read()]


async def test_late_readers_get_everything_and_the_end_is_reported_once() -> None:
    ends: list[tuple[int, bool]] = []
    upstream = Upstream(10)
    tee = StreamTee(aiter(upstream), None, lambda chunks, ok: ends.append((len(chunks), ok)))
    results = await asyncio.gather(_all(tee), _all(tee, 0.03), _all(tee, 0.06))
    assert results == [list(range(10))] * 3
    await tee.wait()
    assert ends == [(10, True)] and upstream.closed


async def test_an_upstream_failure_reaches_every_reader() -> None:
    ends: list[bool] = []
    tee = StreamTee(aiter(Upstream(10, fail_at=4)), None, lambda chunks, ok: ends.append(ok))
    outcomes = await asyncio.gather(_all(tee), _all(tee, 0.02), return_exceptions=True)
    assert all(isinstance(o, ProviderError) for o in outcomes)
    await tee.wait()
    assert ends == [False]


async def test_the_upstream_is_closed_when_the_last_reader_leaves() -> None:
    ends: list[bool] = []
    upstream = Upstream(1000)
    tee = StreamTee(aiter(upstream), None, lambda chunks, ok: ends.append(ok))

    async def leave_after(n: int) -> None:
        async for chunk in tee.read():
            if chunk["i"] >= n:
                break

    await asyncio.gather(leave_after(3), leave_after(6))
    assert tee.closing  # no one may join a stream being given up
    await tee.wait()
    assert ends == [False] and upstream.closed
    # a reader arriving now gets what was said and the end at once (it does not wait)
    assert [c["i"] async for c in tee.read()] == [c["i"] for c in tee.chunks]


async def test_a_pending_tee_releases_its_waiters_when_started_or_abandoned() -> None:
    started, abandoned = StreamTee.pending(owner="a"), StreamTee.pending(owner="b")
    waiting = [asyncio.create_task(t.opened()) for t in (started, abandoned)]
    plain = asyncio.create_task(abandoned.wait())  # a plain request waiting on the stream
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waiting)  # nothing to relay yet: they wait
    ends: list[bool] = []
    started.start(aiter(Upstream(3)), None, lambda chunks, ok: ends.append(ok))
    assert abandoned.abandon() and not abandoned.abandon()
    assert [await w for w in waiting] == [True, False]
    await plain
    assert abandoned.closing and not abandoned.complete
    assert [c["i"] async for c in started.read()] == [0, 1, 2]
    await started.wait()
    assert ends == [True] and not started.abandon()
