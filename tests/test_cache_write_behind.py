"""Cache(write_behind=True): a miss answers before its store write, without losing coalescing."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from thrifty.cache import Cache, CoalesceSettings, WriteBehindSettings
from thrifty.entry import Entry
from thrifty.store.memory import MemoryStore


class GatedStore(MemoryStore):
    """A memory store that says it blocks, and whose writes wait for a gate."""

    blocking = True

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def set(self, entry: Entry) -> None:
        self.gate.wait(5)
        super().set(entry)


async def test_the_answer_comes_before_the_write_and_repeats_are_coalesced() -> None:
    store = GatedStore()
    cache = Cache(store, write_behind=True)
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        return "answer"

    key = cache.key({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert await cache.aget_or_compute(key, compute) == ("answer", "miss")
    assert store.get(key) is None  # still being written
    # an identical request meanwhile rides on the finished answer instead of recomputing
    assert await cache.aget_or_compute(key, compute) == ("answer", "coalesced")
    store.gate.set()
    await cache.adrain()
    assert store.get(key) is not None
    assert await cache.aget_or_compute(key, compute) == ("answer", "hit")
    assert calls == 1


async def test_without_write_behind_the_answer_is_stored_first() -> None:
    cache = Cache("memory://")

    async def compute() -> str:
        return "answer"

    await cache.aget_or_compute("k", compute)
    assert cache.store.get("k") is not None


async def test_write_behind_on_sqlite_releases_the_lease(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cache.db"
    cache = Cache(url, write_behind=True)
    other = Cache(url)

    async def compute() -> dict[str, str]:
        return {"text": "answer"}

    value, status = await cache.aget_or_compute("key-1", compute, model="m")
    assert status == "miss" and value == {"text": "answer"}
    await cache.adrain()
    assert other.get("key-1") == {"text": "answer"}
    # the lease was released with the write: another process's cache can take it at once
    assert other.store.acquire_lease("coalesce:key-1", "someone-else", 60)
    cache.close()
    other.close()


async def test_a_failed_background_write_is_a_counted_fault_not_an_error() -> None:
    class BrokenStore(MemoryStore):
        def set(self, entry: Entry) -> None:
            raise OSError("disk full")

    cache = Cache(BrokenStore(), write_behind=True)

    async def compute() -> str:
        return "answer"

    assert await cache.aget_or_compute("k", compute) == ("answer", "miss")
    await cache.adrain()
    assert cache.stats().errors >= 1
    assert await cache.aget_or_compute("k", compute) == ("answer", "miss")
    await cache.adrain()


async def test_a_failed_compute_stores_nothing() -> None:
    cache = Cache("memory://", write_behind=True)

    async def compute() -> str:
        raise RuntimeError("upstream down")

    with pytest.raises(RuntimeError):
        await cache.aget_or_compute("k", compute)
    await cache.adrain()
    assert cache.store.get("k") is None
    await asyncio.sleep(0)


async def test_without_shared_leases_a_miss_takes_no_lease(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cache.db"
    lone = Cache(url, coalesce=CoalesceSettings(shared_leases=False))
    other = Cache(url)
    assert not lone._leases.shared and other._leases.shared
    seen: list[bool] = []

    async def compute() -> str:
        # while the lone process computes, nobody holds the key's lease
        seen.append(other.store.acquire_lease("coalesce:k", "someone-else", 60))
        return "answer"

    assert await lone.aget_or_compute("k", compute) == ("answer", "miss")
    assert seen == [True]
    assert other.get("k") == "answer"
    lone.close()
    other.close()


async def test_sqlite_lookups_run_on_the_event_loop_and_flushes_do_not(tmp_path: Path) -> None:
    from thrifty.cache.counters import COUNTER_FLUSH_SECONDS

    cache = Cache(f"sqlite:///{tmp_path}/cache.db")
    assert cache.store.inline_reads
    cache.set("k", "v")
    reads: list[threading.Thread] = []
    flushes: list[threading.Thread] = []
    store_get, add_counters = cache.store.get, cache.store.add_counters

    def get(key: str) -> Entry | None:
        reads.append(threading.current_thread())
        return store_get(key)

    def counters(namespace: str, values: dict[str, float]) -> None:
        flushes.append(threading.current_thread())
        add_counters(namespace, values)

    cache.store.get = get  # type: ignore[method-assign]
    cache.store.add_counters = counters  # type: ignore[method-assign]
    cache._counters.last_flush -= COUNTER_FLUSH_SECONDS + 1  # a flush is due
    hit = await cache.alookup("k")
    assert hit is not None and hit.value == "v"
    await cache.adrain()
    assert reads == [threading.main_thread()]
    assert flushes and threading.main_thread() not in flushes
    cache.close()


def test_an_expired_sqlite_row_reads_as_a_miss_without_a_write(tmp_path: Path) -> None:
    import time

    cache = Cache(f"sqlite:///{tmp_path}/cache.db")
    cache.set("old", "v", ttl=0.05)
    time.sleep(0.1)
    assert cache.store.get("old") is None
    assert cache.store.usage() == (0, 0)
    cache.close()


class BatchRecordingStore(GatedStore):
    """Records how many entries each write carried."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def set_many(self, entries: list[Entry]) -> None:  # type: ignore[override]
        self.gate.wait(5)
        self.batches.append(len(entries))
        for entry in entries:
            MemoryStore.set(self, entry)


async def test_answers_queued_while_a_write_runs_are_stored_together() -> None:
    store = BatchRecordingStore()
    cache = Cache(store, write_behind=True)

    async def compute() -> str:
        return "answer"

    keys = [f"k{i}" for i in range(50)]
    assert await cache.aget_or_compute(keys[0], compute) == ("answer", "miss")
    while cache._behind:  # the writer took it and waits at the gate...
        await asyncio.sleep(0.01)
    for key in keys[1:]:  # ...while the other 49 queue up
        assert await cache.aget_or_compute(key, compute) == ("answer", "miss")
    store.gate.set()
    await cache.adrain()
    assert all(store.get(key) is not None for key in keys)
    assert store.batches == [1, 49]
    assert len(cache._flights) == 0  # every flight closed once its answer was stored


async def test_a_full_write_behind_queue_makes_misses_store_first() -> None:
    store = BatchRecordingStore()
    cache = Cache(store, write_behind=WriteBehindSettings(limit=3))

    async def compute() -> str:
        return "answer"

    await cache.aget_or_compute("first", compute)
    while cache._behind:  # the writer took it and waits at the gate
        await asyncio.sleep(0.01)
    for i in range(3):
        await cache.aget_or_compute(f"queued{i}", compute)
    assert cache._behind is not None and len(cache._behind) == 3
    # The next miss finds the queue full: it stores before it answers (and so waits).
    late = asyncio.create_task(cache.aget_or_compute("late", compute))
    await asyncio.sleep(0.2)
    assert not late.done()
    store.gate.set()
    assert await late == ("answer", "miss")
    assert store.get("late") is not None
    await cache.adrain()
    assert all(store.get(key) is not None for key in ("first", "queued0", "queued1", "queued2"))


async def test_an_answer_that_cannot_be_stored_does_not_block_the_rest() -> None:
    cache = Cache("memory://", write_behind=True)

    async def good() -> str:
        return "answer"

    async def unstorable() -> object:
        return object()  # not JSON: encoding it fails in the background

    await cache.aget_or_compute("bad", unstorable)
    await cache.aget_or_compute("good", good)
    await cache.adrain()
    assert cache.store.get("good") is not None and cache.store.get("bad") is None
    assert cache.stats().errors == 1
    assert len(cache._flights) == 0
