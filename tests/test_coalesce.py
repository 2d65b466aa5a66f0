"""Single-flight: identical concurrent misses compute once — across threads, tasks, processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from _procs import compute_once, take_lease_and_die
from conftest import Backend
from thrifty.cache import Cache, CoalesceSettings
from thrifty.cache.coalesce import SingleFlight, poll_delays


def test_threads_compute_once(cache: Cache) -> None:
    calls = []
    lock = threading.Lock()

    def compute() -> str:
        with lock:
            calls.append(1)
        time.sleep(0.2)
        return "answer"

    start = threading.Barrier(8)

    def call(_: int) -> tuple[str, str]:
        start.wait()
        return cache.get_or_compute("same", compute)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    assert len(calls) == 1
    assert {value for value, _ in results} == {"answer"}
    statuses = sorted(status for _, status in results)
    assert statuses.count("miss") == 1
    assert set(statuses) <= {"miss", "coalesced", "hit"}
    assert cache.get_or_compute("same", compute) == ("answer", "hit")


async def test_tasks_compute_once(cache: Cache) -> None:
    calls = []

    async def compute() -> str:
        calls.append(1)
        await asyncio.sleep(0.2)
        return "answer"

    results = await asyncio.gather(*(cache.aget_or_compute("same", compute) for _ in range(8)))
    assert len(calls) == 1
    assert {value for value, _ in results} == {"answer"}
    assert [str(status) for _, status in results].count("miss") == 1


def test_errors_reach_every_waiter_and_are_not_cached(cache: Cache) -> None:
    def compute() -> str:
        time.sleep(0.1)
        raise RuntimeError("model failed")

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(cache.get_or_compute, "k", compute) for _ in range(4)]
        for future in futures:
            with pytest.raises(RuntimeError, match="model failed"):
                future.result()
    assert cache.get_or_compute("k", lambda: "ok") == ("ok", "miss")


async def test_a_cancelled_waiter_does_not_cancel_the_others(cache: Cache) -> None:
    release = asyncio.Event()

    async def compute() -> str:
        await release.wait()
        return "answer"

    leader = asyncio.create_task(cache.aget_or_compute("k", compute))
    await asyncio.sleep(0.05)
    quitter = asyncio.create_task(cache.aget_or_compute("k", compute))
    stayer = asyncio.create_task(cache.aget_or_compute("k", compute))
    await asyncio.sleep(0.05)
    quitter.cancel()
    await asyncio.sleep(0.01)
    release.set()
    assert await leader == ("answer", "miss")
    assert await stayer == ("answer", "coalesced")
    with pytest.raises(asyncio.CancelledError):
        await quitter


async def test_a_cancelled_leader_hands_over_to_a_waiter(cache: Cache) -> None:
    calls = []

    async def compute() -> str:
        calls.append(1)
        await asyncio.sleep(0.2)
        return "answer"

    leader = asyncio.create_task(cache.aget_or_compute("k", compute))
    await asyncio.sleep(0.05)
    waiter = asyncio.create_task(cache.aget_or_compute("k", compute))
    await asyncio.sleep(0.05)
    leader.cancel()
    assert await waiter == ("answer", "miss")
    assert len(calls) == 2
    with pytest.raises(asyncio.CancelledError):
        await leader


def test_single_flight_table_empties() -> None:
    flights = SingleFlight()
    future, leader = flights.join("k")
    other, follower = flights.join("k")
    assert leader and not follower and other is future
    flights.finish("k", future)
    assert len(flights) == 0
    delays = poll_delays(first=0.01, factor=2, cap=0.05)
    assert [next(delays) for _ in range(4)] == [0.01, 0.02, 0.04, 0.05]


def _spawn(target, args_list) -> list[multiprocessing.process.BaseProcess]:  # type: ignore[no-untyped-def]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for proc in procs:
        proc.start()
    return procs


def test_processes_compute_once(shared_backend: Backend, tmp_path: Path) -> None:
    shared_backend.open()  # creates the tables/file and registers cleanup
    log = str(tmp_path / "computes.log")
    start = multiprocessing.get_context("spawn").Barrier(4)
    procs = _spawn(compute_once, [(shared_backend.url, "same", log, start, 10.0)] * 4)
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert len(Path(log).read_text().splitlines()) == 1
    statuses = sorted(Path(log + ".status").read_text().split())
    assert statuses == ["coalesced:answer"] * 3 + ["miss:answer"]


def test_crashed_holder_blocks_others_at_most_lease_ttl(
    shared_backend: Backend, tmp_path: Path
) -> None:
    cache = shared_backend.cache(coalesce=CoalesceSettings(lease_ttl=1.0))
    ready = tmp_path / "leased"
    (proc,) = _spawn(take_lease_and_die, [(shared_backend.url, "k", str(ready))])
    proc.join(30)
    assert proc.exitcode == 1 and ready.exists()  # died holding the lease
    started = time.monotonic()
    assert cache.get_or_compute("k", lambda: "recomputed") == ("recomputed", "miss")
    waited = time.monotonic() - started
    assert 0.2 < waited < 1.5  # it waited for the dead lease, and no longer than its ttl
