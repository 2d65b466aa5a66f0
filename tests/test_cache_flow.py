"""``get_or_compute`` written once (``thrifty.cache.flow``): one generator, two runners.

The flow is checked on its own with recording runners, then both faces of ``Cache`` are checked
to behave alike where they once drifted: a waiter that takes over from a failed or cancelled
leader repeats the whole call, ``on_hit``, request and kind included.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from thrifty.cache import Cache, CacheStatus, CoalesceSettings, Hit, SemanticSettings
from thrifty.cache.coalesce import Leases, SingleFlight
from thrifty.cache.flow import Op, arun, compute_flow, run
from thrifty.cache.types import ComputeCall
from thrifty.errors import CoalesceTimeoutError
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.store.memory import MemoryStore


class Interrupted(BaseException):
    """A leader's interruption that is not an error (like KeyboardInterrupt or a cancel)."""


def chat(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


class SharedMemoryStore(MemoryStore):
    """A memory store that claims to be shared, so the flow takes leases on it."""

    shared = True


def flow_parts(shared: bool = False) -> tuple[SingleFlight, Leases]:
    store = SharedMemoryStore() if shared else MemoryStore()
    return SingleFlight(), Leases(store, CoalesceSettings(), lambda op, exc: None)


# ------------------------------------------------------------------ the flow on its own
def recording_runner(log: list[Op], results: dict[Op, Any]) -> Callable[[Op, Any], Any]:
    def perform(op: Op, arg: Any) -> Any:
        log.append(op)
        outcome = results.get(op)
        if isinstance(outcome, BaseException):
            raise outcome
        return arg.compute() if op is Op.COMPUTE else outcome

    return perform


def test_a_miss_computes_then_stores_through_its_runner() -> None:
    flights, leases = flow_parts()
    log: list[Op] = []
    call = ComputeCall.of("k", lambda: "v", namespace="ns", tags=["t"])
    result = run(compute_flow(call, flights, leases, 1.0), recording_runner(log, {}))
    assert result == ("v", CacheStatus.MISS)
    assert log == [Op.COMPUTE, Op.STORE]  # no lease steps on a store nobody else shares
    assert len(flights) == 0


@pytest.mark.parametrize("face", ["sync", "async"])
def test_both_runners_drive_the_same_steps(face: str) -> None:
    flights, leases = flow_parts(shared=True)
    log: list[Op] = []
    perform = recording_runner(log, {Op.TAKE_LEASE: True})
    flow = compute_flow(ComputeCall.of("k", lambda: "v", store=False), flights, leases, 1.0)
    if face == "sync":
        result = run(flow, perform)
    else:

        async def awaited(op: Op, arg: Any) -> Any:
            return perform(op, arg)

        result = asyncio.run(arun(flow, awaited))
    assert result == ("v", CacheStatus.MISS)
    assert log == [Op.TAKE_LEASE, Op.COMPUTE, Op.RELEASE]


def test_a_failed_step_is_thrown_into_the_flow_and_the_lease_still_released() -> None:
    flights, leases = flow_parts(shared=True)
    log: list[Op] = []
    perform = recording_runner(log, {Op.TAKE_LEASE: True, Op.COMPUTE: ValueError("upstream")})
    call = ComputeCall.of("k", lambda: "v")
    with pytest.raises(ValueError, match="upstream"):
        run(compute_flow(call, flights, leases, 1.0), perform)
    assert log == [Op.TAKE_LEASE, Op.COMPUTE, Op.RELEASE]
    assert len(flights) == 0  # the flight is closed: the next caller leads


def test_a_waiter_past_its_timeout_gets_coalesce_timeout_error() -> None:
    flights, leases = flow_parts()
    flights.join("k")  # a leader that never finishes
    perform = recording_runner([], {Op.WAIT: TimeoutError()})
    with pytest.raises(CoalesceTimeoutError):
        run(compute_flow(ComputeCall.of("k", lambda: "v"), flights, leases, 0.5), perform)


# ------------------------------------------------------- the takeover, on both faces
def semantic_cache() -> Cache:
    settings = SemanticSettings(embedder=HashingEmbedder(), threshold=0.5, index=None)
    return Cache("memory://", semantic=settings)


async def lead_and_fail(cache: Cache, face: str, meanwhile: Callable[[], None]) -> Any:
    """A leader on ``face`` and a waiter (with on_hit and a request) for the same key; once the
    waiter joined the leader's flight, ``meanwhile()`` runs and the leader is interrupted
    (cancelled, or a BaseException). Returns the waiter's (value, status) and its on_hit calls.
    """
    seen: list[Hit] = []
    request = chat("How do I reset my password?")
    key = cache.key(request)
    started, go = threading.Event(), threading.Event()
    if face == "async":

        async def leader_compute() -> str:
            started.set()
            await asyncio.sleep(10)
            return "never"

        async def waiter_compute() -> str:
            return "computed by the waiter"

        leader = asyncio.create_task(cache.aget_or_compute(key, leader_compute))
        await asyncio.to_thread(started.wait, 5)
        waiting_task = asyncio.create_task(
            cache.aget_or_compute(key, waiter_compute, request=request, on_hit=seen.append)
        )
        await asyncio.sleep(0.1)  # the waiter joined the flight
        meanwhile()
        leader.cancel()
        result = await waiting_task
        with pytest.raises(asyncio.CancelledError):
            await leader
        return result, seen

    def leader_compute_sync() -> str:
        started.set()
        go.wait(5)
        raise Interrupted

    def waiter() -> tuple[Any, CacheStatus]:
        started.wait(5)
        return cache.get_or_compute(
            key, lambda: "computed by the waiter", request=request, on_hit=seen.append
        )

    with ThreadPoolExecutor(2) as pool:
        leading = pool.submit(cache.get_or_compute, key, leader_compute_sync)
        waiting = pool.submit(waiter)
        time.sleep(0.2)  # the waiter joined the flight
        meanwhile()
        go.set()
        with pytest.raises(Interrupted):
            leading.result(5)
        return waiting.result(5), seen


@pytest.mark.parametrize("face", ["sync", "async"])
async def test_a_takeover_still_calls_on_hit(face: str) -> None:
    cache = semantic_cache()
    key = cache.key(chat("How do I reset my password?"))

    def stored_meanwhile() -> None:  # e.g. by another process, after the waiter's lookup
        cache.set(key, "stored meanwhile")

    (value, status), seen = await lead_and_fail(cache, face, stored_meanwhile)
    assert (value, status) == ("stored meanwhile", "hit")
    assert len(seen) == 1 and seen[0].value == "stored meanwhile"
    cache.close()


@pytest.mark.parametrize("face", ["sync", "async"])
async def test_a_takeover_still_indexes_the_request(face: str) -> None:
    cache = semantic_cache()
    (value, status), seen = await lead_and_fail(cache, face, lambda: None)
    assert (value, status) == ("computed by the waiter", "miss") and not seen
    await cache.adrain()
    hit = cache.lookup_request(chat("How can I reset my password?"))
    assert hit is not None and hit.kind == "semantic_hit"
    assert hit.value == "computed by the waiter"
    cache.close()


async def test_statuses_are_one_enum_that_compares_as_the_old_strings() -> None:
    cache = Cache("memory://")

    async def compute() -> str:
        return "v"

    _, status = await cache.aget_or_compute("k", compute)
    assert status is CacheStatus.MISS and status == "miss" and f"{status}" == "miss"
    _, status = await cache.aget_or_compute("k", compute)
    assert status is CacheStatus.HIT and status.upper() == "HIT"
    cache.close()


async def test_blocking_store_calls_run_on_the_caches_own_threads(tmp_path: Any) -> None:
    cache = Cache(f"sqlite:///{tmp_path}/c.db")
    threads: list[str] = []
    stats = cache.stats

    def recording_stats(namespace: str | None = None) -> Any:
        threads.append(threading.current_thread().name)
        return stats(namespace)

    cache.stats = recording_stats  # type: ignore[method-assign]
    await cache.astats()
    assert threads and threads[0].startswith("thrifty-store")
    cache.close()
    assert cache._pool is None  # closed with the cache
