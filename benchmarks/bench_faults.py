"""The fault suite, long version: each fault under load for longer, and a soak.

Run:  python benchmarks/bench_faults.py [--rate 100] [--before 5] [--during 10] [--after 10]
      [--only redis,postgres,upstream-500,...] [--redis URL] [--postgres URL]
      python benchmarks/bench_faults.py --soak 600 [--clients 16]

Fault runs (``thrifty.testing.fault_load``): a real ``thrifty serve`` (one worker) under
``--rate`` requests/s from 8 keep-alive clients; after ``--before`` seconds a fault is injected
for ``--during`` seconds, then taken back and the load goes on ``--after`` seconds. Faults: the
cache store (the machine's Redis, PostgreSQL) behind a TCP proxy that is killed and restarted
(50 repeated questions: hits while it is up); upstream 429, 500, a hang past the timeout, a
connection reset and a stall before the first chunk of a stream (every request a new question,
so each reaches an upstream; ``backup`` is the fallback); SIGKILL of the gateway on SQLite, then
a restart on the same file. Reported per fault: requests, client errors (no 200), wrong or
incomplete answers, latency p50/p99/max before and during the fault, and the recovery time
(from the restore to the first cache hit, or the first answer of the primary deployment).

Soak (``--soak SECONDS``): first the highest rate one worker holds is measured (``--clients``
closed-loop clients for 15 s on the soak's mix); then the gateway is held at 80 % of it for
SECONDS (open loop), on a mix of 90 % repeated questions (1,000 of them: hits) and 10 % new
ones (misses, stored in SQLite). Reported: requests, errors, wrong answers, p50/p99, the rate
held, and the gateway's RSS after a warm-up (the first 10 % of the run, at least 30 s) and at
the end (target: growth <= 5 %).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from thrifty.testing.fault_load import (
    UPSTREAM_FAULTS,
    GatewayProcess,
    Load,
    Report,
    backend_scenario,
    gateway_config,
    kill9_scenario,
    upstream_scenarios,
    upstreams,
)

BACKENDS = ["redis", "postgres"]
ALL = [*BACKENDS, *UPSTREAM_FAULTS, "kill-9-sqlite"]


def proxied(url: str, port: int, private: str) -> str:
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    sep = "&" if parts.query else "?"
    return parts._replace(netloc=f"{user}127.0.0.1:{port}").geturl() + sep + private


def target(url: str, default: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default


def drop_tables(url: str, table: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (f"{table}%",)
        ).fetchall()
        for (name,) in rows:
            conn.execute(f'DROP TABLE IF EXISTS "{name}"')


def drop_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


def row(report: Report) -> str:
    before, during = report.latency("before"), report.latency("during")
    recovered = "-" if report.recovered_after is None else f"{report.recovered_after:.2f}"
    return (
        f"| {report.name} | {len(report.outcomes)} | {report.errors} | {report.wrong} | "
        f"{before['p50']:.1f} / {before['p99']:.1f} | "
        f"{during['p50']:.1f} / {during['p99']:.1f} / {during['max']:.0f} | {recovered} |"
    )


def faults(args: argparse.Namespace, workdir: Path) -> None:
    names = args.only.split(",") if args.only else ALL
    timing = {"rate": args.rate, "before": args.before, "during": args.during, "after": args.after}
    reports: list[Report] = []
    print("| fault | requests | client errors | wrong | before p50 / p99 ms | "
          "during p50 / p99 / max ms | recovered after s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name in [n for n in names if n in BACKENDS]:
        tag = uuid.uuid4().hex[:8]
        if name == "redis":
            private = f"prefix=thrifty-bench-faults-{tag}:"
            try:
                report = backend_scenario(
                    name, target(args.redis, 6379),
                    lambda port, p=private: proxied(args.redis, port, p), workdir, **timing,
                )  # fmt: skip
            finally:
                drop_prefix(args.redis, f"thrifty-bench-faults-{tag}:")
        else:
            table = f"thrifty_bench_faults_{tag}"
            try:
                report = backend_scenario(
                    name, target(args.postgres, 5432),
                    lambda port, t=table: proxied(args.postgres, port, f"table={t}"), workdir,
                    **timing,
                )  # fmt: skip
            finally:
                drop_tables(args.postgres, table)
        reports.append(report)
        print(row(report), flush=True)
    upstream = [n for n in names if n in UPSTREAM_FAULTS]
    if upstream:
        for report in upstream_scenarios(upstream, workdir, **timing):
            reports.append(report)
            print(row(report), flush=True)
    if "kill-9-sqlite" in names:
        killed = kill9_scenario(
            workdir, rate=args.rate, before=args.before, down=1.0, after=args.after
        )
        print(row(killed.report), flush=True)
        lost = [o for o in killed.report.outcomes if o.status != 200]
        print(
            f"\nkill -9: {len(lost)} requests failed while the process was gone "
            f"(in flight or refused); integrity_check={killed.integrity!r}, "
            f"{killed.entries_after} entries kept; after the restart "
            f"{killed.right_after}/{killed.answers_after} answers right"
        )


# ------------------------------------------------------------------------------ soak
def mix(tag: str) -> Callable[[int], str]:
    """90 % of requests among 1,000 repeated questions, 10 % new ones."""

    def question(n: int) -> str:
        if n % 10 == 0:
            return f"soak new {tag} {n}"
        return f"soak question {(n * 7919) % 1000}"

    return question


def measure_capacity(port: int, tag: str, clients: int, seconds: float = 15.0) -> float:
    """Requests/s that ``clients`` closed-loop clients get from the gateway."""
    load = Load(port, mix(tag), rate=1e9, threads=clients)
    with load:
        time.sleep(seconds)
    done = [o for o in load.outcomes if o.status == 200]
    return len(done) / seconds


def soak(args: argparse.Namespace, workdir: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    with upstreams() as (bad, good):
        config = gateway_config(bad.base_url, good.base_url, f"sqlite:///{workdir}/soak.db")
        gw = GatewayProcess(config, workdir)
        gw.start()
        try:
            capacity = measure_capacity(gw.port, tag, args.clients)
            rate = 0.8 * capacity
            print(f"capacity: {capacity:.0f} req/s with {args.clients} clients; "
                  f"soaking at {rate:.0f} req/s for {args.soak:g} s", flush=True)  # fmt: skip
            samples: list[tuple[float, float]] = []
            stop = threading.Event()
            started = time.monotonic()

            def sample() -> None:
                while not stop.wait(5.0):
                    samples.append((time.monotonic() - started, gw.rss_mb()))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            load = Load(gw.port, mix(tag + "s"), rate=rate, threads=args.clients)
            with load:
                time.sleep(args.soak)
            stop.set()
            sampler.join()
        finally:
            gw.stop()
    outcomes = load.outcomes
    errors = sum(o.status != 200 for o in outcomes)
    wrong = sum(o.status == 200 and not o.right for o in outcomes)
    latencies = sorted(o.seconds * 1000 for o in outcomes)
    held = len(outcomes) / args.soak
    warm = max(30.0, 0.1 * args.soak)
    after_warmup = [mb for t, mb in samples if t >= warm]
    base, end = after_warmup[0], after_warmup[-1]
    peak = max(after_warmup)
    print(f"soak: {len(outcomes)} requests in {args.soak:g} s = {held:.0f} req/s held, "
          f"{errors} errors, {wrong} wrong; p50 {latencies[len(latencies) // 2]:.1f} ms, "
          f"p99 {latencies[int(0.99 * (len(latencies) - 1))]:.1f} ms")  # fmt: skip
    print(f"RSS after {warm:.0f} s warm-up {base:.1f} MiB, at the end {end:.1f} MiB "
          f"({100 * (end - base) / base:+.1f} %), peak {peak:.1f} MiB "
          f"({100 * (peak - base) / base:+.1f} %)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--before", type=float, default=5.0)
    parser.add_argument("--during", type=float, default=10.0)
    parser.add_argument("--after", type=float, default=10.0)
    parser.add_argument("--only", default="", help=f"comma-separated, of: {','.join(ALL)}")
    parser.add_argument("--redis", default=os.environ.get("THRIFTY_TEST_REDIS",
                                                          "redis://127.0.0.1:6379/0"))  # fmt: skip
    parser.add_argument("--postgres", default=os.environ.get(
        "THRIFTY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"))  # fmt: skip
    parser.add_argument("--soak", type=float, default=0.0, help="soak for this many seconds")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="thrifty-faults-") as folder:
        if args.soak:
            soak(args, Path(folder))
        else:
            faults(args, Path(folder))


if __name__ == "__main__":
    main()
