"""Hit latency of LangChain caches: thrifty's ThriftyCache vs InMemoryCache and SQLiteCache.

Run:  python benchmarks/langchain_cache_hit.py [--n 20000]

All peers run in one process, interleaved in rounds, on the same prompts and generations
(a plain ``Generation`` as an LLM returns, and a ``ChatGeneration`` with an AIMessage carrying
usage as a chat model returns). The floor is a bare dict lookup plus computing thrifty's key
(sha256 of prompt and llm_string), the least any cache that hashes its keys can do.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable

from langchain_core.caches import InMemoryCache
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

import thrifty
from thrifty.integrations.langchain import ThriftyCache
from thrifty.keys import text_key

PROMPTS = [
    f"Human: question number {i} about the refund policy of order {i * 7}?" for i in range(200)
]
LLM_STRING = (
    "{'model_name': 'gpt-4o-mini', 'temperature': 0.0, '_type': 'openai-chat'}---[('stop', None)]"
)


def answers(kind: str) -> list:
    if kind == "text":
        return [Generation(text="Your refund for this order is on its way.")]
    message = AIMessage(
        content="Your refund is on its way.",
        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
        usage_metadata={"input_tokens": 20, "output_tokens": 8, "total_tokens": 28},
        id="run-1",
    )
    return [ChatGeneration(message=message)]


def time_lookups(lookup: Callable[[str, str], object], n: int) -> list[float]:
    out = []
    for i in range(n):
        prompt = PROMPTS[i % len(PROMPTS)]
        t = time.perf_counter_ns()
        value = lookup(prompt, LLM_STRING)
        out.append((time.perf_counter_ns() - t) / 1000)
        assert value is not None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000, help="lookups per peer and kind")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.cache import SQLiteCache
    tmp = tempfile.mkdtemp()
    for kind in ("text", "chat"):
        floor: dict[tuple[str, str], list] = {}
        peers: dict[str, object] = {
            "InMemoryCache": InMemoryCache(),
            "SQLiteCache": SQLiteCache(database_path=f"{tmp}/lc-{kind}.db"),
            "ThriftyCache(memory://)": ThriftyCache(thrifty.Cache("memory://")),
            "ThriftyCache(sqlite)": ThriftyCache(thrifty.Cache(f"sqlite:///{tmp}/t-{kind}.db")),
        }
        for prompt in PROMPTS:
            floor[text_key(prompt, LLM_STRING)] = answers(kind)
            for cache in peers.values():
                cache.update(prompt, LLM_STRING, answers(kind))  # type: ignore[attr-defined]

        def floor_lookup(prompt: str, llm_string: str, floor: dict = floor) -> object:
            return floor.get(text_key(prompt, llm_string))

        lookups = {"dict + key (floor)": floor_lookup}
        lookups |= {name: cache.lookup for name, cache in peers.items()}  # type: ignore[attr-defined]
        samples: dict[str, list[float]] = {name: [] for name in lookups}
        for _ in range(args.rounds):
            for name, fn in lookups.items():
                samples[name] += time_lookups(fn, args.n // args.rounds)
        base = statistics.median(samples["dict + key (floor)"])
        print(f"\n{kind} generations, {args.n} hits each (µs)")
        print(f"{'peer':28} {'p50':>8} {'p99':>8} {'p50 / floor':>12}")
        for name, values in samples.items():
            values.sort()
            p50 = statistics.median(values)
            p99 = values[int(len(values) * 0.99)]
            print(f"{name:28} {p50:8.1f} {p99:8.1f} {p50 / base:12.2f}")


if __name__ == "__main__":
    main()
