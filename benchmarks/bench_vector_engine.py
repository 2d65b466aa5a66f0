"""The semantic index on Milvus (milvus-lite) beside the in-process usearch index, in one run.

Synthetic clustered unit vectors (384 dimensions, MiniLM's width) in one scope (one support bot:
the worst case, every vector in one partition) plus a second scope of the same size, so the
engine's scope filter is exercised. Queries are noisy copies of stored vectors; recall@1 is
against exact search (numpy). Reports per backend: bulk insert time, search p50/p99, recall@1,
and this process's resident memory before and after filling (a replica's memory: usearch keeps
the vectors in it; with the engine the vectors live in milvus-lite's own server process).

    python benchmarks/bench_vector_engine.py --entries 100000 --queries 500
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from thrifty.semantic.engine_index import MilvusIndex
from thrifty.semantic.index import ScopedIndex

DIM = 384


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 50, 1), DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, DIM))
    vectors = vectors.astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def run(name: str, index: object, vectors: np.ndarray, queries: np.ndarray, truth: list[str],
        batch: int) -> dict[str, float]:  # fmt: skip
    before = rss_mb()
    keys = [f"k{i}" for i in range(len(vectors))]
    started = time.perf_counter()
    for scope in ("bot", "other-tenant"):
        for start in track(range(0, len(vectors), batch), description=f"{name}: {scope}"):
            end = start + batch
            index.add_many(  # type: ignore[attr-defined]
                [f"{scope}:{k}" for k in keys[start:end]],
                [scope] * len(keys[start:end]),
                vectors[start:end],
                [""] * len(keys[start:end]),
            )
    insert_s = time.perf_counter() - started
    latencies, right = [], 0
    for query, expected in zip(queries, truth, strict=True):
        t = time.perf_counter()
        found = index.search("bot", query, 4)  # type: ignore[attr-defined]
        latencies.append((time.perf_counter() - t) * 1000)
        right += bool(found) and found[0].key == f"bot:{expected}"
    latencies.sort()
    return {
        "insert_s": insert_s,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "recall1": right / len(queries),
        "rss_growth_mb": rss_mb() - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000, help="vectors per scope")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()
    vectors = clustered(args.entries, 1)
    rng = np.random.default_rng(2)
    picks = rng.integers(0, len(vectors), args.queries)
    queries = vectors[picks] + 0.05 * rng.normal(size=(args.queries, DIM)).astype(np.float32)
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    truth = [f"k{int(np.argmax(vectors @ q))}" for q in queries]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        results["usearch (in process)"] = run(
            "usearch", ScopedIndex(DIM, model="bench"), vectors, queries, truth, args.batch
        )
        engine = MilvusIndex(f"milvus-lite:///{Path(folder)}/engine.db", DIM, model="bench")
        results["milvus-lite (engine)"] = run(
            "milvus-lite", engine, vectors, queries, truth, args.batch
        )
        engine.close()
    table = Table(title=f"{args.entries:,} vectors per scope x 2 scopes, {args.queries} queries")
    for column in ("index", "insert s", "search p50 ms", "p99 ms", "recall@1", "RSS growth MB"):
        table.add_column(column, justify="right")
    for name, r in results.items():
        table.add_row(name, f"{r['insert_s']:.1f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                      f"{r['recall1']:.3f}", f"{r['rss_growth_mb']:.0f}")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
