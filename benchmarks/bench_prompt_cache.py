"""Provider prompt caching kept warm: prefix affinity on vs off, on a replay.

    python benchmarks/bench_prompt_cache.py                 # figures for RESULTS.md
    python benchmarks/bench_prompt_cache.py --requests 600  # quicker

A pool of ``--deployments`` deployments of one model (thrifty's ``DeploymentPool``, simple-shuffle)
answers a stream of requests from ``--tenants`` tenants. Each tenant's requests share a long
system prompt (a SQuAD article as its documents, 1-6k tokens) and ask a real Chatbot Arena
question (arena-hard) after it. Tenants' popularity is Zipf-like, arrivals Poisson over a
simulated hour (a fake clock: no sleeping).

The fake upstream caches like OpenAI's prompt caching: per deployment (each is its own cache),
prompts of >= 1,024 tokens, the longest previously seen prefix in 128-token steps is cached,
entries go cold after ``--ttl`` seconds unused (OpenAI: 5-10 min). Cached input tokens are priced
at OpenAI's 50 % (gpt-4o: $2.50 -> $1.25 per M) and, for comparison, Anthropic's 10 %.
Off: the pool's strategy picks a deployment. On: ``affinity.prefix_key`` of the request picks it
(``affinity.rendezvous``), the same key a gateway sends as ``prompt_cache_key``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_data import data_file
from thrifty.accounting.tokens import count_text
from thrifty.routing import Deployment, DeploymentPool
from thrifty.routing.affinity import prefix_key

BLOCK, MIN_TOKENS = 128, 1024
INPUT_PER_M = 2.50


class CachingUpstream:
    """Per-deployment prefix caches, keyed by (tenant, block end) within the shared system
    prompt and (tenant, question, block end) beyond it."""

    def __init__(self, ttl: float, clock: list[float]) -> None:
        self.ttl, self.clock = ttl, clock
        self.caches: dict[str, dict[tuple[Any, ...], float]] = {}
        self.prompt_tokens = self.cached_tokens = 0

    def __call__(self, request: dict[str, Any]) -> Any:
        async def call(deployment: Deployment) -> str:
            now = self.clock[0]
            cache = self.caches.setdefault(deployment.id, {})
            total, shared = request["tokens"], request["system_tokens"]
            hit = 0
            ends = range(MIN_TOKENS, total + 1, BLOCK)
            for end in ends:
                key = (request["tenant"], end) if end <= shared else (*request["id"], end)
                seen = cache.get(key)
                if seen is not None and now - seen <= self.ttl:
                    hit = end
                cache[key] = now
            self.prompt_tokens += total
            self.cached_tokens += hit
            return deployment.id

        return call


def workload(args: argparse.Namespace) -> list[dict[str, Any]]:
    raw = json.loads(gzip.decompress(data_file("rag/squad_dev_v1.1_subset.json.gz").read_bytes()))
    paragraphs = [p["context"] for article in raw["data"] for p in article["paragraphs"]]
    questions = [
        json.loads(line)["prompt"]
        for line in data_file("arena_hard/questions.jsonl").read_text().splitlines()
        if line.strip()
    ]
    rng = np.random.default_rng(args.seed)
    systems = []
    for t in range(args.tenants):
        want = int(rng.integers(1000, 6000))
        text, start = "", int(rng.integers(len(paragraphs)))
        while count_text(text) < want:
            text += paragraphs[start % len(paragraphs)] + "\n\n"
            start += 1
        systems.append(f"You are tenant {t}'s assistant. Answer from these documents.\n\n{text}")
    system_tokens = [count_text(s) for s in systems]
    popularity = 1.0 / np.arange(1, args.tenants + 1) ** 0.8
    popularity /= popularity.sum()
    times = np.cumsum(rng.exponential(3600.0 / args.requests, size=args.requests))
    requests = []
    for i, at in enumerate(times):
        tenant = int(rng.choice(args.tenants, p=popularity))
        q = int(rng.integers(len(questions)))
        body = {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": systems[tenant]},
                {"role": "user", "content": questions[q]},
            ],
        }
        tokens = system_tokens[tenant] + count_text(questions[q]) + 8
        requests.append(
            {
                "at": float(at),
                "tenant": tenant,
                "id": (tenant, q, i),
                "body": body,
                "tokens": tokens,
                "system_tokens": system_tokens[tenant],
            }
        )
    return requests


async def replay(requests: list[dict[str, Any]], args: argparse.Namespace, on: bool) -> dict:
    clock = [0.0]
    pool = DeploymentPool(
        [Deployment("gpt-4o", id=f"gpt-4o#{i}") for i in range(args.deployments)],
        clock=lambda: clock[0],
    )
    upstream = CachingUpstream(args.ttl, clock)
    for request in requests:
        clock[0] = request["at"]
        key = prefix_key(request["body"], tenant=str(request["tenant"])) if on else None
        await pool.run("gpt-4o", upstream(request), affinity=key)
    share = upstream.cached_tokens / upstream.prompt_tokens
    fresh = upstream.prompt_tokens - upstream.cached_tokens
    cost = {
        f"{name}_usd": round((fresh + upstream.cached_tokens * rate) * INPUT_PER_M / 1e6, 2)
        for name, rate in (("openai_50pct", 0.5), ("anthropic_10pct", 0.1))
    }
    return {"cached_token_share": round(share, 4), "prompt_tokens": upstream.prompt_tokens, **cost}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--tenants", type=int, default=40)
    parser.add_argument("--deployments", type=int, default=4)
    parser.add_argument("--ttl", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    requests = workload(args)
    off = asyncio.run(replay(requests, args, on=False))
    on = asyncio.run(replay(requests, args, on=True))
    no_cache = sum(r["tokens"] for r in requests) * INPUT_PER_M / 1e6
    print(
        f"{args.requests} requests, {args.tenants} tenants, {args.deployments} deployments, "
        f"ttl {args.ttl:.0f}s; input cost without any caching ${no_cache:.2f}"
    )
    print("| prefix affinity | cached-token share | input $ (50 % cached price) | (10 %) |")
    print("|---|---|---|---|")
    for name, result in (("off (simple-shuffle)", off), ("on", on)):
        print(
            f"| {name} | {result['cached_token_share']:.1%} | ${result['openai_50pct_usd']:.2f} "
            f"| ${result['anthropic_10pct_usd']:.2f} |"
        )


if __name__ == "__main__":
    main()
