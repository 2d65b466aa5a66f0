"""Gateway memory over time: resident memory after 10,000 and after 100,000 requests.

One ``thrifty serve`` worker with its default SQLite cache, in front of a FAKE upstream that
answers at once (``_fake_upstream.py``). The client (aiohttp, a few concurrent connections) sends
a mix: half the requests repeat one of 500 prompts (cache hits once seen), half are new prompts
(misses: an upstream call and a cache write). The resident set (RSS) of the gateway process is
read from ``/proc`` at checkpoints; the goal is RSS(100k) within 10 % of RSS(10k).

    python benchmarks/bench_gateway_memory.py --requests 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateways import MODEL, Proc, start_fake_upstream, start_thrifty

PATH = "/v1/chat/completions"
REPEATED_PROMPTS = 500


def body(number: int, run: str, rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        prompt = f"frequently asked question number {rng.randrange(REPEATED_PROMPTS)}"
    else:
        prompt = f"[{run}] a question never asked before, number {number}"
    return json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
    ).encode()


async def drive(
    proc: Proc, total: int, checkpoints: list[int], concurrency: int
) -> list[dict[str, float]]:
    import aiohttp

    run = uuid.uuid4().hex[:8]
    rng = random.Random(11)
    sent = 0
    statuses: dict[str, int] = {}
    errors = 0
    rows: list[dict[str, float]] = []
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(until: int) -> None:
            nonlocal sent, errors
            while sent < until:
                sent += 1
                payload = body(sent, run, rng)
                async with session.post(
                    proc.url + PATH, data=payload, headers={"Content-Type": "application/json"}
                ) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                    status = response.headers.get("x-thrifty-cache-status", "?")
                    statuses[status] = statuses.get(status, 0) + 1

        for checkpoint in checkpoints:
            await asyncio.gather(*(worker(checkpoint) for _ in range(concurrency)))
            await asyncio.sleep(1.0)  # let background writes finish before reading RSS
            row = {
                "requests": float(sent),
                "rss_mb": round(proc.rss_mb(), 1),
                "seconds": round(time.perf_counter() - started, 1),
                "errors": float(errors),
                "hits": float(statuses.get("HIT", 0)),
                "misses": float(statuses.get("MISS", 0)),
            }
            rows.append(row)
            print(
                f"{sent:>7} requests  RSS {row['rss_mb']:7.1f} MiB  "
                f"({row['hits']:.0f} hits, {row['misses']:.0f} misses, {errors} errors, "
                f"{row['seconds']} s)",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    checkpoints = sorted(
        {c for c in (1_000, 10_000, 25_000, 50_000, 75_000) if c < args.requests} | {args.requests}
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-memory-"))
    upstream = start_fake_upstream(workdir)
    try:
        thrifty = start_thrifty(upstream, workdir)
        try:
            print(f"gateway started: RSS {thrifty.rss_mb():.1f} MiB")
            rows = asyncio.run(drive(thrifty, args.requests, checkpoints, args.concurrency))
        finally:
            thrifty.stop()
    finally:
        upstream.stop()
    by_count = {int(r["requests"]): r["rss_mb"] for r in rows}
    if 10_000 in by_count and args.requests in by_count:
        growth = by_count[args.requests] / by_count[10_000] - 1
        print(
            f"RSS after {args.requests:,} requests vs after 10,000: {growth * 100:+.1f} % "
            f"({by_count[10_000]} -> {by_count[args.requests]} MiB)"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
