"""Latency of ``thrifty.wrap``: a cache hit vs the same call sent to a loopback upstream.

Run:  python benchmarks/wrap_hit_latency.py [--n 2000]

The upstream is FakeOpenAI (a fake that answers at once on 127.0.0.1), so "direct" is the
SDK's own cost plus loopback HTTP: the least a real provider call could cost. Peers run in one
process, interleaved in rounds, with the same request: the unwrapped SDK client, the wrapped
client hitting a ``memory://`` cache, the wrapped client hitting a ``sqlite`` cache, and a
miss through the wrapper (a new question each time, so it measures the wrapper's miss overhead).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import openai

import thrifty
from thrifty.testing.fake_openai import FakeOpenAI


def timed(fn: Callable[[int], object], n: int, offset: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter_ns()
        fn(offset + i)
        out.append((time.perf_counter_ns() - t) / 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="calls per peer")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    with FakeOpenAI() as fake, openai.OpenAI(base_url=fake.base_url, api_key="x") as raw:
        memory = thrifty.wrap(raw, thrifty.Cache("memory://"))
        sqlite = thrifty.wrap(raw, thrifty.Cache(f"sqlite:///{tmp}/wrap.db"))
        messages = [{"role": "user", "content": "Do you ship to Canada?"}]
        request = {"model": "gpt-4o-mini", "messages": messages, "temperature": 0}
        memory.chat.completions.create(**request)
        sqlite.chat.completions.create(**request)

        def miss(i: int) -> object:
            fresh = [{"role": "user", "content": f"Question {i}?"}]
            return memory.chat.completions.create(**{**request, "messages": fresh})

        peers: dict[str, Callable[[int], object]] = {
            "direct SDK call (loopback fake)": lambda i: raw.chat.completions.create(**request),
            "wrap, hit (memory://)": lambda i: memory.chat.completions.create(**request),
            "wrap, hit (sqlite)": lambda i: sqlite.chat.completions.create(**request),
            "wrap, miss (memory://)": miss,
        }
        samples: dict[str, list[float]] = {name: [] for name in peers}
        per_round = args.n // args.rounds
        for r in range(args.rounds):
            for name, fn in peers.items():
                samples[name] += timed(fn, per_round, r * per_round)
    direct = statistics.median(samples["direct SDK call (loopback fake)"])
    print(f"{args.n} calls per peer (µs)")
    print(f"{'peer':34} {'p50':>9} {'p99':>9} {'p50 / direct':>13}")
    for name, values in samples.items():
        values.sort()
        p50 = statistics.median(values)
        p99 = values[int(len(values) * 0.99)]
        print(f"{name:34} {p50:9.1f} {p99:9.1f} {p50 / direct:13.3f}")


if __name__ == "__main__":
    main()
