"""Per-replica figures for the capacity plan (docs/scaling.md): three ``thrifty serve``
replicas sharing one Redis, in front of a FAKE upstream that answers at once.

Measured, per replica: requests/s and requests per CPU-second of the replica on cache hits and
on misses (a new prompt each time), resident memory; per cached entry: bytes in the in-process
memory store (tracemalloc) and in Redis (``MEMORY USAGE`` of every key under the run's prefix);
Redis commands per request (``INFO commandstats`` deltas). The Redis is a PRIVATE
``redis-server`` on a free port, started and stopped by this script, so nobody else's commands
are counted and nothing of the machine's Redis is touched.

    nice python benchmarks/bench_replicas.py --seconds 5 --entries 5000

The machine is shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateways import (
    PAGE_KB,
    Client,
    Proc,
    chat_body,
    free_port,
    start_fake_upstream,
    start_thrifty,
)

PATH = "/v1/chat/completions"
ANSWER = "A canned answer from the fake upstream. " * 12  # ~480 bytes, a short chat answer


def private_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(workdir)]  # fmt: skip
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return server, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("the private redis-server did not start")


def commands(client: redis.Redis) -> dict[str, int]:
    """Commands the Redis has run so far by name (those Lua scripts run included; the INFO
    calls themselves excluded)."""
    stats = client.info("commandstats")
    return {
        k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"
    }


def load(proc: Proc, seconds: float, threads: int, miss: bool) -> dict[str, float]:
    """``threads`` keep-alive clients posting for ``seconds``: hits (one prompt) or misses."""
    counts = [0] * threads
    stop = time.monotonic() + seconds
    tag = f"{time.time_ns()}"

    def run(n: int) -> None:
        client = Client(proc.port)
        while time.monotonic() < stop:
            prompt = f"miss {tag} {n} {counts[n]}" if miss else "the same question"
            _, status, _ = client.post(PATH, chat_body(prompt))
            if status != 200:
                raise RuntimeError(f"status {status}")
            counts[n] += 1
        client.close()

    cpu = proc.cpu_seconds()
    started = time.monotonic()
    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    used = proc.cpu_seconds() - cpu
    total = sum(counts)
    return {
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "requests_per_cpu_s": round(total / used, 1) if used else 0.0,
    }


def per_request_commands(
    proc: Proc, client: redis.Redis, count: int, miss: bool
) -> dict[str, float]:
    """Redis commands per request, in all and by name (EVALSHA: one round trip each)."""
    http = Client(proc.port)
    tag = f"{time.time_ns()}"
    body = chat_body("the same question")
    http.post(PATH, body)  # the hit's entry exists
    time.sleep(0.5)  # write-behind done
    before = commands(client)
    for i in range(count):
        if miss:
            body = chat_body(f"c {tag} {i}")
        http.post(PATH, body)
    time.sleep(1.0)  # the misses' store writes (write-behind) are counted too
    http.close()
    after = commands(client)
    delta = {k: (v - before.get(k, 0)) / count for k, v in after.items()}
    out = {k: round(v, 2) for k, v in sorted(delta.items()) if v >= 0.01}
    return {"all": round(sum(delta.values()), 2), **out}


def entry_bytes(redis_port: int, entries: int) -> dict[str, float]:
    """Bytes per cached answer: the in-process memory store and Redis, same entries."""
    from thrifty.cache import Cache

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    memory = Cache("memory://")
    for i in range(entries):
        memory.set(f"prompt number {i} of the entry-size run", ANSWER)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    in_process = sum(s.size_diff for s in after.compare_to(before, "filename"))
    memory.close()
    prefix = f"entry-bytes-{os.getpid()}:"
    shared = Cache(f"redis://127.0.0.1:{redis_port}/0?prefix={prefix}")
    for i in range(entries):
        shared.set(f"prompt number {i} of the entry-size run", ANSWER)
    shared.close()
    client = redis.Redis(port=redis_port)
    used = sum(
        int(client.memory_usage(name) or 0)
        for name in client.scan_iter(match=f"{prefix}*", count=1000)
    )
    return {
        "answer_bytes": len(ANSWER),
        "in_process_bytes_per_entry": round(in_process / entries),
        "redis_bytes_per_entry": round(used / entries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--entries", type=int, default=5000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    server, port = private_redis(workdir)
    procs: list[Proc] = []
    try:
        upstream = start_fake_upstream(workdir)
        procs.append(upstream)
        url = f"redis://127.0.0.1:{port}/0?prefix=bench:"
        extra = {"ledger": {"enabled": False}}
        for n in range(3):
            procs.append(start_thrifty(upstream, workdir, cache_url=url, name=f"r{n}", extra=extra))
        replicas = procs[1:]
        client = redis.Redis(port=port)
        report: dict[str, object] = {"load_average": os.getloadavg()}
        report["rss_mb_idle"] = [round(p.rss_mb(), 1) for p in replicas]
        report["hits"] = [load(p, args.seconds, args.threads, miss=False) for p in replicas]
        report["misses"] = [load(p, args.seconds, args.threads, miss=True) for p in replicas]
        report["rss_mb_after_load"] = [round(p.rss_mb(), 1) for p in replicas]
        report["redis_entries"] = client.dbsize()
        report["redis_commands_per_hit"] = per_request_commands(replicas[0], client, 200, False)
        report["redis_commands_per_miss"] = per_request_commands(replicas[0], client, 200, True)
        report["entry_bytes"] = entry_bytes(port, args.entries)
        report["load_average_end"] = os.getloadavg()
        report["page_kb"] = PAGE_KB
        print(json.dumps(report, indent=1))
    finally:
        for proc in reversed(procs):
            proc.stop()
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
