"""Code run in child processes (multiprocessing spawn) by the cross-process tests."""

from __future__ import annotations

import os
import time
from pathlib import Path

from thrifty.cache import Cache, CoalesceSettings
from thrifty.entry import Entry
from thrifty.store import open_store


def write_many(url: str, worker: int, count: int, start: object) -> None:
    """Write ``count`` entries named ``w<worker>-<i>`` once every worker is ready."""
    store = open_store(url)
    start.wait()  # type: ignore[attr-defined]
    for i in range(count):
        key = f"w{worker}-{i}"
        store.set(Entry(key, f"t1[{worker},{i}]".encode(), tags=(f"w{worker}",)))
    store.close()


def compute_once(url: str, key: str, log: str, start: object, lease_ttl: float) -> None:
    """get_or_compute with a slow compute that appends one line to ``log`` per call, and
    the call's status to ``log.status``."""
    cache = Cache(url, coalesce=CoalesceSettings(lease_ttl=lease_ttl))
    start.wait()  # type: ignore[attr-defined]

    def compute() -> str:
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        return "answer"

    value, status = cache.get_or_compute(key, compute)
    cache.close()
    with open(log + ".status", "a") as fh:
        fh.write(f"{status}:{value}\n")


def take_lease_and_die(url: str, key: str, ready: str) -> None:
    """Become the leader for ``key``, then crash before computing or releasing the lease."""
    cache = Cache(url, coalesce=CoalesceSettings(lease_ttl=1.0))

    def compute() -> str:
        Path(ready).write_text("leased")
        os._exit(1)

    cache.get_or_compute(key, compute)
