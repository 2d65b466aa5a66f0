"""A backend outage under steady load: PostgreSQL and Redis die for a few seconds mid-run.

Run:  python benchmarks/bench_backend_outage.py [--fault kill|stall] [--seconds 15] [--outage 5]
      [--rate 400] [--threads 8] [--redis redis://127.0.0.1:6379/0]
      [--postgres postgresql://postgres@127.0.0.1:5432/test]

Per backend, ``thrifty.Cache`` talks to the real server through a
:class:`~thrifty.testing.tcp_proxy.TcpProxy` (the machine's servers are never stopped: the proxy
is what dies). ``--threads`` workers call ``get_or_compute`` at ``--rate`` calls/s in all on 200
warmed keys (a fake 2 ms upstream computes a miss). A third of the way in, the proxy is killed
(open connections cut, new ones refused) or, with ``--fault stall``, stalled (connections
accepted, nothing forwarded: a hung server); ``--outage`` seconds later it is restarted or
resumed. Reported per backend: calls answered, client errors (an exception out of
``get_or_compute``: must be 0), wrong answers (must be 0), latency p50/p99/max before and during
the outage, and the time from the proxy's return to the first hit. Keys are written under a
private prefix/table, removed after. Then the breaker's own cost, on an in-memory store so
nothing else is timed: a ``get`` through a closed breaker vs the bare store, and a ``get`` an
open breaker refuses.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from thrifty.cache import Cache
from thrifty.entry import Entry
from thrifty.errors import BackendUnavailableError
from thrifty.store.breaker import BreakerStore
from thrifty.store.memory import MemoryStore
from thrifty.testing.tcp_proxy import TcpProxy

KEYS = [f"question-{i}" for i in range(200)]
UPSTREAM_S = 0.002


@dataclass
class Call:
    started: float
    latency: float
    status: str
    """hit, miss, coalesced, or ``error``."""
    wrong: bool = False


@dataclass
class Run:
    backend: str
    calls: list[Call] = field(default_factory=list)
    killed_at: float = 0.0
    restarted_at: float = 0.0


def answer(key: str) -> str:
    return f"the answer to {key}"


def proxied(url: str, proxy: TcpProxy, private: str) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@{proxy.host}:{proxy.port}" if auth else f"{proxy.host}:{proxy.port}"
    query = f"{parts.query}&{private}" if parts.query else private
    return parts._replace(netloc=netloc, query=query).geturl()


def worker(cache: Cache, run: Run, stop_at: float, interval: float, seed: int) -> None:
    rng = random.Random(seed)
    due = time.monotonic() + rng.random() * interval
    while (now := time.monotonic()) < stop_at:
        if now < due:
            time.sleep(due - now)
        due += interval
        key = rng.choice(KEYS)

        def compute(key: str = key) -> str:
            time.sleep(UPSTREAM_S)  # a fake upstream
            return answer(key)

        started = time.monotonic()
        try:
            value, status = cache.get_or_compute(key, compute)
            call = Call(started, time.monotonic() - started, status, value != answer(key))
        except Exception:  # a client error: what the outage must never cause
            call = Call(started, time.monotonic() - started, "error")
        run.calls.append(call)  # list.append is atomic under the GIL


def run_backend(name: str, url: str, args: argparse.Namespace) -> Run:
    parts = urlsplit(url)
    default_port = 6379 if name == "redis" else 5432
    tag = uuid.uuid4().hex[:8]
    private = f"prefix=thrifty-bench-outage-{tag}:" if name == "redis" else f"table=bench_{tag}"
    run = Run(name)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or default_port) as proxy:
        cache = Cache(proxied(url, proxy, private))
        try:
            for key in KEYS:
                cache.set(key, answer(key))
            started = time.monotonic()
            stop_at = started + args.seconds
            interval = args.threads / args.rate
            threads = [
                threading.Thread(target=worker, args=(cache, run, stop_at, interval, i))
                for i in range(args.threads)
            ]
            for thread in threads:
                thread.start()
            time.sleep(args.seconds / 3)
            run.killed_at = time.monotonic()
            proxy.stall() if args.fault == "stall" else proxy.stop()
            time.sleep(args.outage)
            run.restarted_at = time.monotonic()
            proxy.resume() if args.fault == "stall" else proxy.start()
            for thread in threads:
                thread.join()
        finally:
            proxy.start()
            inner: Any = getattr(cache.store, "inner", cache.store)  # the store behind a breaker
            deadline = time.monotonic() + 10
            while True:  # the breaker may still be cooling down: clean up on the store itself
                try:
                    inner.drop_tables() if name == "postgres" else inner.clear()
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            cache.close()
    return run


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(runs: list[Run]) -> None:
    header = (
        f"{'backend':9} {'calls':>6} {'answered':>8} {'errors':>6} {'wrong':>5} "
        f"{'outage calls':>12} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'normal p50/p99 ms':>17} {'recovery s':>10}"
    )
    rows = [header, "-" * len(header)]
    for run in runs:
        before = [c.latency * 1000 for c in run.calls if c.started < run.killed_at]
        during = [
            c.latency * 1000 for c in run.calls if run.killed_at <= c.started < run.restarted_at
        ]
        hits_after = [
            c.started for c in run.calls if c.started >= run.restarted_at and c.status == "hit"
        ]
        recovery = min(hits_after) - run.restarted_at if hits_after else float("nan")
        errors = sum(c.status == "error" for c in run.calls)
        wrong = sum(c.wrong for c in run.calls)
        rows.append(
            f"{run.backend:9} {len(run.calls):6} {len(run.calls) - errors:8} {errors:6} "
            f"{wrong:5} {len(during):12} {statistics.median(during):7.3f} "
            f"{pct(during, 0.99):7.1f} {max(during):7.1f} "
            f"{statistics.median(before):8.3f}/{pct(before, 0.99):<8.2f} {recovery:10.2f}"
        )
    print("\n".join(rows), flush=True)


class FakeDownStore(MemoryStore):
    """A FAKE network store (a memory store that declares outage errors and can be down)."""

    outage_errors = (ConnectionError,)
    down = False

    def get(self, key: str) -> Entry | None:
        if self.down:
            raise ConnectionError("refused")
        return super().get(key)


def breaker_cost(n: int = 200_000) -> None:
    """µs per ``get``: bare store, through a closed breaker, refused by an open one."""
    inner = FakeDownStore()
    inner.set(Entry("k", b"v"))
    guarded = BreakerStore(inner)

    def per_call(get: Callable[[str], object]) -> float:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(n // 5):
                get("k")
            best = min(best, (time.perf_counter() - started) / (n // 5))
        return best * 1e6

    bare, closed = per_call(inner.get), per_call(guarded.get)
    inner.down = True

    def refused(key: str) -> None:
        with contextlib.suppress(BackendUnavailableError):
            guarded.get(key)

    for _ in range(3):
        refused("k")  # opens the breaker
    print(
        f"breaker cost per get: bare store {bare:.3f} µs, closed breaker {closed:.3f} µs "
        f"(+{closed - bare:.3f}), refused by the open breaker {per_call(refused):.2f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fault", choices=("kill", "stall"), default="kill")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--outage", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=400.0, help="calls per second in all")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--only", choices=("redis", "postgres"))
    args = parser.parse_args()
    # Every failed call logs a warning (the cache's, the pool's): counted here, not printed.
    logging.disable(logging.CRITICAL)
    runs = []
    for name in ("postgres", "redis"):
        if args.only in (None, name):
            runs.append(run_backend(name, getattr(args, name), args))
    print(
        f"{args.threads} threads, {args.rate:.0f} calls/s on {len(KEYS)} warmed keys, "
        f"{args.seconds:.0f} s run, proxy {'stalled' if args.fault == 'stall' else 'dead'} "
        f"for {args.outage:.0f} s"
    )
    report(runs)
    breaker_cost()


if __name__ == "__main__":
    main()
