"""Exact-cache hit latency through LangChain's ``BaseCache``: thrifty vs LangChain's own caches.

Run:  python benchmarks/bench_exact_cache.py [--n 10000] [--redis redis://127.0.0.1:6379/0]

Per backend, both sides do the same work through the same interface (``lookup(prompt,
llm_string)`` returning generations): thrifty ``memory://`` vs ``InMemoryCache``, thrifty SQLite
vs ``langchain_community.cache.SQLiteCache``, thrifty Redis vs ``langchain_community.cache.
RedisCache``. N distinct prompts are stored, then each is looked up once per contender, in
shuffled order, contenders interleaved in blocks so machine noise hits them alike. Reference
points: a bare dict lookup plus computing thrifty's key (memory) and a bare redis-py GET of the
very key thrifty reads (Redis). Redis keys written here are deleted by name afterwards (thrifty's
under a private prefix; LangChain's one by one: never FLUSHDB).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable

from langchain_core.caches import InMemoryCache
from langchain_core.outputs import Generation

import thrifty
from thrifty.integrations.langchain import ThriftyCache
from thrifty.keys import text_key

LLM_STRING = (
    "{'model_name': 'gpt-4o-mini', 'temperature': 0.0, 'max_tokens': 256, "
    "'_type': 'openai'}---[('stop', None)]"
)
BLOCK = 250


def prompt(i: int) -> str:
    return f"Human: I ordered item #{i * 7919 % 100003} on day {i % 28 + 1}; how do I get a refund?"


def answer(i: int) -> list[Generation]:
    return [
        Generation(
            text=f"To get a refund for order {i}, open Orders, choose the item and press "
            "'Return'. The refund reaches your card within 5 business days of our receipt."
        )
    ]


def measure(
    contenders: dict[str, Callable[[str, str], object]], n: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per-call latency (µs) of every contender over all N prompts, interleaved in blocks,
    and its mean CPU time per call (µs; not inflated when the machine preempts us)."""
    order = list(range(n))
    random.Random(7).shuffle(order)
    prompts = [prompt(i) for i in order]
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    cpu = dict.fromkeys(contenders, 0.0)
    names = list(contenders)
    clock = time.perf_counter_ns
    for start in range(0, n, BLOCK):
        block = prompts[start : start + BLOCK]
        names.reverse()  # alternate who goes first
        for name in names:
            fn, out = contenders[name], samples[name]
            cpu_start = time.thread_time()
            for p in block:
                t = clock()
                value = fn(p, LLM_STRING)
                out.append((clock() - t) / 1000)
                if value is None:
                    raise RuntimeError(f"{name} missed a stored prompt")
            cpu[name] += time.thread_time() - cpu_start
    return samples, {name: total / n * 1e6 for name, total in cpu.items()}


def report(
    title: str, measured: tuple[dict[str, list[float]], dict[str, float]], base: str
) -> list[str]:
    samples, cpu = measured
    rows = [f"\n### {title}", "", f"Ratios are to: {base}.", ""]
    rows.append("| contender | p50 µs | p99 µs | p50 ratio | CPU µs/call | CPU ratio |")
    rows.append("|---|---|---|---|---|---|")
    ref, ref_cpu = statistics.median(samples[base]), cpu[base]
    for name, values in samples.items():
        values = sorted(values)
        p50, p99 = statistics.median(values), values[int(len(values) * 0.99)]
        rows.append(
            f"| {name} | {p50:.1f} | {p99:.1f} | {p50 / ref:.2f} | {cpu[name]:.1f} "
            f"| {cpu[name] / ref_cpu:.2f} |"
        )
    print("\n".join(rows), flush=True)
    return rows


def fill(cache: object, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        cache.update(prompt(i), LLM_STRING, answer(i))  # type: ignore[attr-defined]
    return (time.perf_counter() - started) / n * 1e6


def bench_memory(n: int) -> None:
    thrifty_cache = ThriftyCache(
        thrifty.Cache("memory://", limits=thrifty.SizeLimits(max_entries=n * 2))
    )
    lc = InMemoryCache()
    floor: dict[str, list[Generation]] = {}
    fill(thrifty_cache, n)
    fill(lc, n)
    for i in range(n):
        floor[text_key(prompt(i), LLM_STRING)] = answer(i)

    def dict_and_key(p: str, llm: str) -> object:
        return floor.get(text_key(p, llm))

    measured = measure(
        {
            "dict + thrifty key (reference)": dict_and_key,
            "LangChain InMemoryCache": lc.lookup,
            "ThriftyCache(memory://)": thrifty_cache.lookup,
        },
        n,
    )
    report(f"memory, {n:,} prompts", measured, "dict + thrifty key (reference)")


def bench_sqlite(n: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.cache import SQLiteCache
    tmp = tempfile.mkdtemp(prefix="thrifty-bench-")
    thrifty_cache = ThriftyCache(thrifty.Cache(f"sqlite:///{tmp}/thrifty.db"))
    lc = SQLiteCache(database_path=f"{tmp}/langchain.db")
    set_thrifty, set_lc = fill(thrifty_cache, n), fill(lc, n)
    print(f"\nSQLite fill, µs per update: thrifty {set_thrifty:.0f}, LangChain {set_lc:.0f}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # langchain_core.load's beta warning on every hit
        measured = measure(
            {"LangChain SQLiteCache": lc.lookup, "ThriftyCache(sqlite)": thrifty_cache.lookup}, n
        )
    report(f"SQLite, {n:,} prompts", measured, "ThriftyCache(sqlite)")


def bench_redis(n: int, url: str) -> None:
    import redis
    from langchain_community.cache import RedisCache

    prefix = f"thrifty-bench-{uuid.uuid4().hex[:8]}:"
    sep = "&" if "?" in url else "?"
    cache = thrifty.Cache(f"{url}{sep}prefix={prefix}")
    thrifty_cache = ThriftyCache(cache)
    client = redis.Redis.from_url(url)
    lc = RedisCache(client)
    lc_keys = [RedisCache._key(prompt(i), LLM_STRING) for i in range(n)]
    try:
        fill(thrifty_cache, n)
        fill(lc, n)
        entry_prefix = cache.store._entry_prefix  # type: ignore[attr-defined]

        def bare_get(p: str, llm: str) -> object:
            return client.get(entry_prefix + text_key(p, llm))

        measured = measure(
            {
                "bare redis-py GET, same key (reference)": bare_get,
                "LangChain RedisCache": lc.lookup,
                "ThriftyCache(redis)": thrifty_cache.lookup,
            },
            n,
        )
        report(f"Redis, {n:,} prompts", measured, "bare redis-py GET, same key (reference)")
    finally:
        cache.store.clear()
        for start in range(0, len(lc_keys), 1000):
            client.delete(*lc_keys[start : start + 1000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="distinct prompts stored")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--only", choices=["memory", "sqlite", "redis"], action="append")
    args = parser.parse_args()
    chosen = args.only or ["memory", "sqlite", "redis"]
    if "memory" in chosen:
        bench_memory(args.n)
    if "sqlite" in chosen:
        bench_sqlite(args.n)
    if "redis" in chosen:
        bench_redis(args.n, args.redis)


if __name__ == "__main__":
    main()
