"""The per-thread hit tally: no hit lost or counted twice while threads add and others take."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import thrifty
from thrifty.cache.tally import HitTally

SAVING = SimpleNamespace(tokens_in=3, tokens_out=4, cost_usd=0.25, latency_ms=2.0)


def _add_totals(total: dict[str, list[float]], taken: dict[str, list[float]]) -> None:
    for namespace, sums in taken.items():
        row = total.setdefault(namespace, [0, 0, 0.0, 0.0])
        for i, value in enumerate(sums):
            row[i] += value


def test_take_returns_only_what_was_added_since_the_last_take() -> None:
    tally = HitTally()
    for _ in range(3):
        tally.add("a", SAVING)
    tally.add("b", SAVING)
    assert tally.take() == {"a": [3, 21, 0.75, 6.0], "b": [1, 7, 0.25, 2.0]}
    assert tally.take() == {}
    tally.add("a", SAVING)
    assert tally.take() == {"a": [1, 7, 0.25, 2.0]}


def test_concurrent_adds_and_takes_sum_exactly() -> None:
    tally = HitTally()
    threads, per_thread = 8, 20_000
    total: dict[str, list[float]] = {}
    done = threading.Event()

    def taker() -> None:
        while not done.is_set():
            _add_totals(total, tally.take())

    def adder(namespace: str) -> None:
        for _ in range(per_thread):
            tally.add(namespace, SAVING)

    watcher = threading.Thread(target=taker)
    watcher.start()
    workers = [threading.Thread(target=adder, args=(f"ns{i % 2}",)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    watcher.join()
    _add_totals(total, tally.take())
    hits = threads // 2 * per_thread
    assert total == {
        "ns0": [hits, 7 * hits, 0.25 * hits, 2.0 * hits],
        "ns1": [hits, 7 * hits, 0.25 * hits, 2.0 * hits],
    }
    assert tally.take() == {}
    assert tally._threads == []  # finished threads are dropped once their sums are taken


def test_clear_forgets_what_was_added() -> None:
    tally = HitTally()
    tally.add("a", SAVING)
    tally.clear()
    assert tally.take() == {}
    tally.add("a", SAVING)
    assert tally.take() == {"a": [1, 7, 0.25, 2.0]}


def test_cache_stats_count_hits_from_many_threads() -> None:
    cache = thrifty.Cache("memory://")
    cache.set("k", "v", tokens_in=10, tokens_out=5, cost_usd=0.5)
    per_thread = 2_000

    def hit() -> None:
        for _ in range(per_thread):
            assert cache.lookup("k") is not None

    workers = [threading.Thread(target=hit) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stats = cache.stats()
    assert stats.hits == 4 * per_thread
    assert stats.tokens_saved == 4 * per_thread * 15
    assert abs(stats.usd_saved - 4 * per_thread * 0.5) < 1e-6
    cache.clear()
    assert cache.stats().hits == 0
