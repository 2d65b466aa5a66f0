"""Semantic lookup latency, embedding included, at 10k / 100k (/ 1M) entries, beside GPTCache.

    python benchmarks/bench_semantic_speed.py                  # 10k and 100k, with GPTCache
    python benchmarks/bench_semantic_speed.py --sizes 1000000 --gptcache-max 1000000  # the 1M leg

thrifty's lookup is what ``SemanticMatcher.find`` does, through the same public parts: embed the
question with the local MiniLM (onnxruntime), search the scope's partition of ``ScopedIndex``
(usearch HNSW above 4,096 rows), then for the nearest candidates: the store re-check
(``memory://`` store filled with the same N entries), every guard, the learned pair scorer and
the verified policy, each candidate through every check (the worst case: the matcher stops at a
guard's veto) until one passes all.

Fill vectors are QQP-derived: the MiniLM vectors of the benchmark's QQP questions, and beyond
them the same vectors with small Gaussian noise, re-normalized (so the index holds realistic
neighbourhoods at any N). Queries are real QQP questions never stored, embedded at query time.
GPTCache 0.1.44 (sqlite + faiss, its documented semantic setup, ``max_size`` above N) runs in
its own virtual environment with thrifty's same MiniLM as its embedding function.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_data import OUT, ROOT, embedder, load_qqp, qqp_vectors
from thrifty.entry import Entry
from thrifty.semantic.guards import Guards
from thrifty.semantic.index import ScopedIndex
from thrifty.semantic.pair_scorer import PairScorer
from thrifty.semantic.thresholds import VerifiedThreshold
from thrifty.store.memory import MemoryStore

GPTCACHE_PYTHON = "/work/venvs/gptcache/bin/python"
SCOPE = "bench-scope"


def fill_vectors(n: int, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for start in range(0, n, 65536):
        m = min(65536, n - start)
        rows = base[(np.arange(start, start + m)) % len(base)]
        noise = rng.normal(0, 0.03, rows.shape).astype(np.float32) if start >= len(base) else 0
        v = rows + noise
        out[start : start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def thrifty_leg(n: int, vectors: np.ndarray, texts: list[str], queries: list[str]) -> dict:
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    index = ScopedIndex(384, model="all-MiniLM-L6-v2")
    store = MemoryStore()
    for i in range(n):
        key = f"k{i}"
        index.add(key, SCOPE, vectors[i], texts[i % len(texts)])
        store.set(Entry(key=key, value=b'"answer"'))
    build_s = time.perf_counter() - started
    memory = rss_mb() - before
    policy = VerifiedThreshold(0.02)
    guards, scorer = Guards(), PairScorer.default()
    emb = embedder()
    emb.embed(["warm up"])
    timings, embed_ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        vector = emb.embed_one(q)
        t1 = time.perf_counter()
        for cand in index.search(SCOPE, vector, 4):
            live = store.get(cand.key) is not None
            allowed = guards.allows(q, cand.text)
            trusted = scorer.accepts(q, cand.text, cand.similarity)
            if live and allowed and trusted and policy.should_hit(cand.key, cand.similarity):
                break
        timings.append((time.perf_counter() - t0) * 1000)
        embed_ms.append((t1 - t0) * 1000)
    return {
        "build_s": build_s,
        "p50": statistics.median(timings),
        "p99": percentile(timings, 0.99),
        "embed_p50": statistics.median(embed_ms),
        "match_p50": statistics.median(t - e for t, e in zip(timings, embed_ms, strict=True)),
        "bytes_per_entry": memory * 2**20 / n,
    }


def gptcache_leg(n, vectors, texts, queries, python) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        job, out = Path(tmp) / "job.npz", Path(tmp) / "out.json"
        fill_texts = np.array([f"{texts[i % len(texts)]} #{i}" for i in range(n)])
        np.savez(
            job,
            kind="speed",
            fill_texts=fill_texts,
            fill_vectors=vectors[:n],
            query_texts=np.array(queries),
            src=str(ROOT / "src"),
        )
        subprocess.run(
            [python, str(ROOT / "benchmarks" / "_gptcache_runner.py"), str(job), str(out)],
            check=True,
            cwd=tmp,
        )
        res = json.loads(out.read_text())
    t = res["lookup_ms"]
    return {
        "build_s": res["build_s"],
        "p50": statistics.median(t),
        "p99": percentile(t, 0.99),
        "embed_p50": statistics.median(res["embed_ms"]),
        "match_p50": statistics.median(a - b for a, b in zip(t, res["embed_ms"], strict=True)),
        "rss_mb": res["rss_mb"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--no-gptcache", dest="gptcache", action="store_false")
    parser.add_argument("--gptcache-max", type=int, default=100_000)
    parser.add_argument("--gptcache-python", default=GPTCACHE_PYTHON)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = load_qqp("test")
    a_vecs, _ = qqp_vectors(rows, "qqp-test")
    texts = [r["a"] for r in rows]
    dev = load_qqp("dev")
    queries = [r["b"] for r in dev[: args.queries]]  # never stored
    rng = np.random.default_rng(0)
    vectors = fill_vectors(max(sizes), a_vecs, rng)
    print(
        "| entries | peer | build s | lookup p50 ms | p99 ms | embedding p50 ms | "
        "lookup minus embedding p50 ms | memory / entry | p50 ratio | ratio without embedding |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    for n in sizes:
        mine = thrifty_leg(n, vectors, texts, queries)
        results[n] = {"thrifty": mine}
        print(
            f"| {n:,} | thrifty (MiniLM, usearch, guards, scorer, policy) | "
            f"{mine['build_s']:.0f} | "
            f"{mine['p50']:.2f} | {mine['p99']:.2f} | {mine['embed_p50']:.2f} | "
            f"{mine['match_p50']:.2f} | {mine['bytes_per_entry']:.0f} B | 1× | 1× |",
            flush=True,
        )
        if args.gptcache and n <= args.gptcache_max:
            other = gptcache_leg(n, vectors, texts, queries, args.gptcache_python)
            results[n]["gptcache"] = other
            print(
                f"| {n:,} | GPTCache 0.1.44 (same MiniLM, sqlite + faiss) | "
                f"{other['build_s']:.0f} | {other['p50']:.2f} | {other['p99']:.2f} | "
                f"{other['embed_p50']:.2f} | {other['match_p50']:.2f} | "
                f"(RSS {other['rss_mb']:.0f} MB) | {other['p50'] / mine['p50']:.1f}× slower | "
                f"{other['match_p50'] / max(mine['match_p50'], 1e-3):.1f}× slower |",
                flush=True,
            )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"semantic_speed_{'_'.join(map(str, sizes))}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
