"""Budgets under concurrency: 1,000 trials of concurrent first requests of a new key, per
limits backend, counting the trials that spent past the budget.

Each trial opens a new key with a budget of ``--budget`` dollars and fires ``--concurrency``
requests at once. A request reserves its worst case (``--worst`` dollars) before its simulated
upstream call (0-5 ms), then settles what the call really cost (20-100 % of the worst case).
Trials run ``--parallel`` at a time (different keys), so a backend sees both contention on one
key and traffic on many. Peers, side by side in one run:

- ``memory``, ``redis``, ``postgres``: thrifty's limits backends (reserve, then settle);
- ``check-then-spend``: the pattern that overspends (LiteLLM #26672): a request passes when
  spend so far is under the budget, and its cost is added once the call returned.

    python benchmarks/bench_budget.py --trials 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from thrifty.errors import BudgetExceededError
from thrifty.limits import KeyLimits, LimitBackend, open_limits
from thrifty.limits.postgres import PostgresLimitBackend

REDIS_URL = os.environ.get("THRIFTY_TEST_REDIS", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("THRIFTY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
EPSILON = 1e-9

#: One trial: (dollars spent, requests answered, requests let through unchecked).
Trial = Callable[[int], Awaitable[tuple[float, int, int]]]


def reserving(backend: LimitBackend, args: argparse.Namespace, run: str) -> Trial:
    limits = KeyLimits(max_budget_usd=args.budget)

    async def trial(number: int) -> tuple[float, int, int]:
        key = f"bench-{run}-{number}"
        rng = random.Random(number)
        unchecked = [0]

        async def one() -> float:
            try:
                reservation = await backend.reserve(key, limits, tokens=1, cost_usd=args.worst)
            except BudgetExceededError:
                return 0.0
            unchecked[0] += reservation.degraded  # the backend failed: let through (fail-open)
            await asyncio.sleep(rng.uniform(0, 0.005))
            cost = args.worst * rng.uniform(0.2, 1.0)
            await backend.settle(reservation, tokens=2, cost_usd=cost)
            return cost

        costs = await asyncio.gather(*(one() for _ in range(args.concurrency)))
        await backend.reset(key)
        return sum(costs), sum(1 for c in costs if c > 0), unchecked[0]

    return trial


def check_then_spend(args: argparse.Namespace) -> Trial:
    async def trial(number: int) -> tuple[float, int, int]:
        rng = random.Random(number)
        spent = [0.0]

        async def one() -> float:
            if spent[0] >= args.budget:
                return 0.0
            await asyncio.sleep(rng.uniform(0, 0.005))
            cost = args.worst * rng.uniform(0.2, 1.0)
            spent[0] += cost
            return cost

        costs = await asyncio.gather(*(one() for _ in range(args.concurrency)))
        return sum(costs), sum(1 for c in costs if c > 0), 0

    return trial


async def run_trials(trial: Trial, args: argparse.Namespace) -> dict[str, float]:
    results: list[tuple[float, int, int]] = []
    started = time.perf_counter()
    for start in range(0, args.trials, args.parallel):
        batch = range(start, min(start + args.parallel, args.trials))
        results += await asyncio.gather(*(trial(n) for n in batch))
    elapsed = time.perf_counter() - started
    spent = [s for s, _, _ in results]
    over = [s - args.budget for s in spent if s > args.budget + EPSILON]
    return {
        "trials": len(results),
        "overspent_trials": len(over),
        "max_overspend_usd": max(over, default=0.0),
        "mean_budget_used": statistics.fmean(s / args.budget for s in spent),
        "mean_answered": statistics.fmean(n for _, n, _ in results),
        "unchecked": sum(u for _, _, u in results),
        "ms_per_trial": elapsed * 1000 / len(results),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--worst", type=float, default=0.15)
    parser.add_argument("--backends", default="memory,redis,postgres")
    parser.add_argument(
        "--redis-timeout", type=float, default=0.5, help="seconds before a Redis call fails open"
    )
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    rows: dict[str, dict[str, float]] = {}
    for kind in args.backends.split(","):
        url = {
            "memory": "memory://",
            "redis": f"{REDIS_URL}?timeout={args.redis_timeout}",
            "postgres": f"{POSTGRES_URL}?table=bench_limits_{run}",
        }[kind]
        backend = open_limits(url)
        try:
            rows[kind] = await run_trials(reserving(backend, args, run), args)
        finally:
            if isinstance(backend, PostgresLimitBackend):
                backend.drop_tables()
            await backend.aclose()
    rows["check-then-spend"] = await run_trials(check_then_spend(args), args)
    print(
        f"\n{args.trials} trials x {args.concurrency} concurrent first requests of a new key, "
        f"budget ${args.budget}, worst case ${args.worst} per request"
    )
    print("| limiter | trials | overspent trials | max overspend $ | budget used | "
          "answered per trial | let through unchecked | ms per trial |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['trials']:.0f} | {r['overspent_trials']:.0f} | "
            f"{r['max_overspend_usd']:.4f} | {r['mean_budget_used']:.1%} | "
            f"{r['mean_answered']:.1f} | {r['unchecked']:.0f} | {r['ms_per_trial']:.1f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
