"""Batch jobs (issue 4): makespan under a provider-style rate limit, and kill -9 + resume.

Upstream: RateLimitedFakeOpenAI, a FAKE OpenAI-compatible server on 127.0.0.1 (latency L per
answer, at most RPM/60 requests admitted in each wall-clock second, 429 + Retry-After beyond
that). It measures scheduling, never a model.

1. Makespan: N distinct chat requests at concurrency C, side by side in one process run:
   thrifty's batch engine with ``--rpm`` (limiter + Retry-After), thrifty without ``--rpm``
   (429-driven only), and LangChain's ``ChatOpenAI.batch(..., config={"max_concurrency": C})``
   (langchain-openai over the openai SDK, its default 2 retries, ``return_exceptions=True``).
   Bound: max(N·L/C, 60·N/RPM).
2. Crash and resume: ``thrifty batch run`` in a subprocess, SIGKILL at a random moment, then
   ``--resume``; answers the upstream completed per custom_id are counted at the fake.

Run::

    python benchmarks/bench_batch.py                  # both parts, default sizes
    python benchmarks/bench_batch.py --part makespan --n 600 --latency 0.5 --concurrency 16
    python benchmarks/bench_batch.py --part crash --trials 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from thrifty import Cache, CoalesceSettings
from thrifty.batching import BatchSettings, JobPaths, parse_lines, run_job
from thrifty.batching.engine import single_provider
from thrifty.providers.openai_compat import OpenAICompatProvider
from thrifty.testing.fake_limited import RateLimitedFakeOpenAI


def job_lines(n: int, tag: str) -> list[str]:
    return [
        json.dumps(
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"{tag} question {i}"}],
                },
            }
        )
        for i in range(n)
    ]


class FakeProcess:
    """RateLimitedFakeOpenAI (a FAKE upstream) in its own process, as a remote upstream is."""

    def __init__(self, latency: float, rpm: int | None) -> None:
        cmd = [sys.executable, "-m", "thrifty.testing.fake_limited", "--port", "0",
               "--latency", str(latency)]  # fmt: skip
        if rpm:
            cmd += ["--rpm", str(rpm)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        self.base_url = line.strip().rsplit(" ", 1)[-1]

    def stats(self) -> dict[str, Any]:
        url = self.base_url.removesuffix("/v1") + "/stats"
        with urllib.request.urlopen(url) as response:
            return json.loads(response.read())

    def __enter__(self) -> FakeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait()


def max_per_second(times: list[float]) -> int:
    return max(Counter(int(t) for t in times).values()) if times else 0


async def run_thrifty(n: int, latency: float, c: int, rpm: int, *, use_rpm: bool) -> dict:
    tag = f"thrifty-{use_rpm}"
    with FakeProcess(latency, rpm) as fake, tempfile.TemporaryDirectory() as d:
        provider = OpenAICompatProvider(fake.base_url, "bench")
        lone = CoalesceSettings(shared_leases=False)  # as the CLI opens it
        cache = Cache(f"sqlite:///{d}/cache.db", coalesce=lone)
        settings = BatchSettings(  # as `thrifty batch run` sets it
            max_concurrency=c, rpm=rpm if use_rpm else None, inline_writes=True
        )
        requests = parse_lines(job_lines(n, tag))
        started = time.perf_counter()
        summary = await run_job(
            requests,
            JobPaths.beside(Path(d) / "out.jsonl"),
            resolve=single_provider(provider),
            cache=cache,
            settings=settings,
        )
        wall = time.perf_counter() - started
        await provider.aclose()
        cache.close()
        return report(fake.stats(), wall, summary.ok, n)


def run_langchain(n: int, latency: float, c: int, rpm: int) -> dict:
    from langchain_openai import ChatOpenAI

    with FakeProcess(latency, rpm) as fake:
        llm = ChatOpenAI(model="gpt-4o-mini", base_url=fake.base_url, api_key="bench")
        prompts = [json.loads(x)["body"]["messages"][0]["content"] for x in job_lines(n, "lc")]
        started = time.perf_counter()
        results = llm.batch(prompts, config={"max_concurrency": c}, return_exceptions=True)
        wall = time.perf_counter() - started
        ok = sum(1 for r in results if not isinstance(r, Exception))
        return report(fake.stats(), wall, ok, n)


def report(stats: dict[str, Any], wall: float, ok: int, n: int) -> dict[str, Any]:
    times = sorted(stats["admit_times"])
    start = min(times + stats["refuse_times"], default=0.0)
    return {
        "wall_s": wall,
        "ok": ok,
        "lost": n - ok,
        "429s": stats["refused"],
        "admitted": stats["admitted"],
        "max_per_s": max_per_second(times),
        # 429s after the run's first second: what a limiter that works keeps near zero
        "late_429s": sum(1 for t in stats["refuse_times"] if t > start + 1.0),
    }


def makespan(args: argparse.Namespace) -> None:
    n, latency, c = args.n, args.latency, args.concurrency
    for rpm in args.rpm:
        bound = max(n * latency / c, 60 * n / rpm)
        print(f"\n## N={n} L={latency}s C={c} RPM={rpm} (quota {rpm // 60}/s): bound {bound:.2f} s")
        print(
            "| runner | makespan s | / bound | ok | lost | 429s | 429s after 1st s "
            "| max admitted in 1 s |"
        )
        print("|---|---|---|---|---|---|---|---|")
        rows = [
            ("thrifty batch (--rpm)", run_thrifty, {"use_rpm": True}),
            ("thrifty batch (no --rpm)", run_thrifty, {"use_rpm": False}),
            ("LangChain ChatOpenAI.batch", run_langchain, {}),
        ]
        for name, fn, extra in rows:
            time.sleep(1.1)  # a fresh rate window for every runner
            r = fn(n, latency, c, rpm, **extra)
            if asyncio.iscoroutine(r):
                r = asyncio.run(r)
            print(
                f"| {name} | {r['wall_s']:.2f} | {r['wall_s'] / bound:.3f} | {r['ok']} | "
                f"{r['lost']} | {r['429s']} | {r['late_429s']} | {r['max_per_s']} |",
                flush=True,
            )


CLI = [sys.executable, "-c", "from thrifty.cli import main; main()"]


def crash_trial(n: int, latency: float, c: int, rng: random.Random, d: Path) -> dict[str, Any]:
    (d / "in.jsonl").write_text("\n".join(job_lines(n, "crash")) + "\n")
    with RateLimitedFakeOpenAI(latency=latency) as fake:
        (d / "config.yaml").write_text(
            "model_list:\n  - model_name: gpt-4o-mini\n"
            f"    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{fake.base_url}'}}\n"
            f"cache: {{url: 'sqlite:///{d}/cache.db'}}\n"
        )
        cmd = [
            *CLI, "batch", "run", str(d / "in.jsonl"), "-o", str(d / "out.jsonl"),
            "--config", str(d / "config.yaml"), "--max-concurrency", str(c), "--no-progress",
            "--json",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # wait for the first request, then kill at a random point of the expected run
        while fake.admitted == 0 and proc.poll() is None:
            time.sleep(0.005)
        expected = n * latency / c
        time.sleep(rng.uniform(0.05, 0.9) * expected)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        answered_at_kill = sum(fake.answered_by_prompt.values())
        arrived_at_kill = sum(fake.calls_by_prompt.values())
        done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
        summary = json.loads(done.stdout)
        answered = Counter(fake.answered_by_prompt)
        arrived = Counter(fake.calls_by_prompt)
    out = [json.loads(x) for x in (d / "out.jsonl").read_text().splitlines()]
    return {
        "answered_at_kill": answered_at_kill,
        "in_flight_at_kill": arrived_at_kill - answered_at_kill,
        "resume_rc": done.returncode,
        "resumed_from_journal": summary["skipped"],
        "resumed_from_cache": summary["cached"],
        "flagged": summary["interrupted"],
        "output_lines": len(out),
        "distinct_ids": len({o["custom_id"] for o in out}),
        "answered_hist": dict(Counter(answered[f"crash question {i}"] for i in range(n))),
        "arrived_twice": sum(1 for i in range(n) if arrived[f"crash question {i}"] > 1),
    }


def crash(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    n, latency, c = args.crash_n, args.crash_latency, args.crash_concurrency
    print(f"\n## kill -9 + --resume: N={n} L={latency}s C={c}, {args.trials} trials")
    print(
        "| trial | answered before kill | in flight at kill | from journal | from cache | "
        "output lines (distinct ids) | answers per custom_id | re-sent after kill | "
        "reported as cut off |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    totals: list[int] = []
    for trial in range(args.trials):
        with tempfile.TemporaryDirectory() as d:
            r = crash_trial(n, latency, c, rng, Path(d))
        hist = ", ".join(f"{k}×: {v}" for k, v in sorted(r["answered_hist"].items()))
        print(
            f"| {trial + 1} | {r['answered_at_kill']} | {r['in_flight_at_kill']} | "
            f"{r['resumed_from_journal']} | {r['resumed_from_cache']} | "
            f"{r['output_lines']} ({r['distinct_ids']}) | {hist} | {r['arrived_twice']} | "
            f"{r['flagged']} |",
            flush=True,
        )
        totals.append(r["answered_hist"].get(1, 0))
    print(f"\ncustom_ids answered exactly once: median {statistics.median(totals)} of {n}")


def main() -> None:
    parser = argparse.ArgumentParser(description="thrifty batch benchmarks (fake upstream)")
    parser.add_argument("--part", choices=["makespan", "crash", "all"], default="all")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rpm", type=int, nargs="+", default=[1200, 6000])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--crash-n", type=int, default=200)
    parser.add_argument("--crash-latency", type=float, default=0.2)
    parser.add_argument("--crash-concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    if args.part in ("makespan", "all"):
        makespan(args)
    if args.part in ("crash", "all"):
        crash(args)


if __name__ == "__main__":
    main()
