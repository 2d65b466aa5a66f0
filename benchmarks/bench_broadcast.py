"""How long a drop takes to reach another replica's in-process layers (``cache/broadcast.py``).

Two caches (two replicas) on the machine's Redis (pub/sub) and PostgreSQL (LISTEN/NOTIFY),
under a prefix / table of this run's own. Per trial the second replica holds a row for a key in
its local semantic index; the first deletes the key; the time from ``delete()`` returning to
the row leaving the second replica's index is the delivery lag (polled every 0.2 ms).

    python benchmarks/bench_broadcast.py --trials 200
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import numpy as np
from rich.console import Console
from rich.table import Table

from thrifty.cache import Cache, SemanticSettings
from thrifty.semantic.embedder import HashingEmbedder

REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def replica(url: str) -> Cache:
    settings = SemanticSettings(embedder=HashingEmbedder(), index=None)
    cache = Cache(url, semantic=settings)
    assert cache.broadcast is not None and cache.broadcast.subscribed.wait(10)
    return cache


def trials(url: str, count: int) -> tuple[list[float], list[float]]:
    first, second = replica(url), replica(url)
    index = second.semantic.index  # type: ignore[union-attr]
    vector = np.ones(HashingEmbedder().dim, dtype=np.float32)
    lags, deletes = [], []
    try:
        for i in range(count):
            key = f"bench-{i}"
            first.set(key, "value")
            index.add(key, "scope", vector / np.linalg.norm(vector), "text")
            started = time.perf_counter()
            first.delete(key)
            deleted = time.perf_counter()
            while key in index:
                time.sleep(0.0002)
                if time.perf_counter() - deleted > 5:
                    raise RuntimeError(f"no drop within 5 s on {url}")
            lags.append((time.perf_counter() - deleted) * 1000)
            deletes.append((deleted - started) * 1000)
    finally:
        first.clear()
        second.close()
        first.close()
    return lags, deletes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    table = Table(title=f"drop delivery to another replica, {args.trials} trials")
    for column in ("bus", "lag p50 ms", "lag p99 ms", "lag max ms", "delete() p50 ms"):
        table.add_column(column, justify="right")
    for name, url in (
        ("Redis pub/sub", f"{REDIS}?prefix=thrifty-bench-broadcast-{run}:"),
        ("PostgreSQL LISTEN/NOTIFY", f"{POSTGRES}?table=thrifty_bench_broadcast_{run}"),
    ):
        lags, deletes = trials(url, args.trials)
        lags.sort()
        table.add_row(
            name,
            f"{statistics.median(lags):.2f}",
            f"{lags[max(0, int(len(lags) * 0.99) - 1)]:.2f}",
            f"{lags[-1]:.2f}",
            f"{statistics.median(deletes):.2f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
