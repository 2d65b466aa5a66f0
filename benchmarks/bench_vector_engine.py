"""The semantic index on Milvus (milvus-lite) beside the in-process usearch index, in one run.

Synthetic clustered unit vectors (384 dimensions, MiniLM's width) in one scope (one support bot:
the worst case, every vector in one partition) plus a second scope of the same size, so the
engine's scope filter is exercised. Queries are noisy copies of stored vectors; recall@1 is
against exact search (numpy). Reports per backend: bulk insert time, search p50/p99, recall@1,
and this process's resident memory before and after filling (a replica's memory: usearch keeps
the vectors in it; with the engine the vectors live in milvus-lite's own server process).

    python benchmarks/bench_vector_engine.py --entries 100000 --queries 500
    python benchmarks/bench_vector_engine.py --entries 1000000 --other 10000 --no-usearch \
        --engine milvus://127.0.0.1:19530   # a Milvus server (the pip package `milvus` runs one)

The client's RSS is sampled as the engine fills: with a Milvus server it is what a replica holds
of the index (nothing that grows with the entries); with milvus-lite the engine runs inside the
client process, so its growth is the engine's.
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
        batch: int, other: int, fill: bool = True) -> dict[str, object]:  # fmt: skip
    before = rss_mb()
    keys = [f"k{i}" for i in range(len(vectors))]
    started = time.perf_counter()
    rss_curve: list[tuple[int, float]] = [(0, 0.0)]
    for scope, rows in (("bot", len(vectors)), ("other-tenant", other)) if fill else ():
        for start in track(range(0, rows, batch), description=f"{name}: {scope}"):
            end = min(start + batch, rows)
            index.add_many(  # type: ignore[attr-defined]
                [f"{scope}:{k}" for k in keys[start:end]],
                [scope] * (end - start),
                vectors[start:end],
                [""] * (end - start),
            )
            if scope == "bot":
                rss_curve.append((end, rss_mb() - before))
    insert_s = time.perf_counter() - started
    wait = getattr(index, "wait_indexed", None)
    if callable(wait):
        wait()  # a server builds its index after the writes: search what a replica will search
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
        "rss_curve": rss_curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000, help="vectors per scope")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--other", type=int, default=None, help="vectors of the second scope "
                        "(default: as many as --entries)")  # fmt: skip
    parser.add_argument("--engine", action="append", default=None,
                        help="engine URL (repeatable; default: a milvus-lite file)")  # fmt: skip
    parser.add_argument("--no-usearch", action="store_true")
    existing = "search a collection an earlier run filled (?collection=NAME)"
    parser.add_argument("--existing", action="store_true", help=existing)
    args = parser.parse_args()
    other = args.entries if args.other is None else args.other
    vectors = clustered(args.entries, 1)
    rng = np.random.default_rng(2)
    picks = rng.integers(0, len(vectors), args.queries)
    queries = vectors[picks] + 0.05 * rng.normal(size=(args.queries, DIM)).astype(np.float32)
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    truth = [f"k{int(np.argmax(vectors @ q))}" for q in queries]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        if not args.no_usearch:
            results["usearch (in process)"] = run(
                "usearch", ScopedIndex(DIM, model="bench"), vectors, queries, truth, args.batch,
                other,
            )  # fmt: skip
        for url in args.engine or [f"milvus-lite:///{Path(folder)}/engine.db"]:
            if url.startswith("milvus://") and "collection=" not in url:
                url += f"?collection=bench_{int(time.time())}"
            engine = MilvusIndex(url, DIM, model="bench")
            results[url.split("?")[0]] = run(
                url.split(":")[0], engine, vectors, queries, truth, args.batch, other,
                not args.existing,
            )  # fmt: skip
            if not args.existing:
                engine.drop()
            engine.close()
    title = f"{args.entries:,} vectors in the searched scope + {other:,} in another"
    table = Table(title=f"{title}, {args.queries} queries")
    for column in ("index", "insert s", "search p50 ms", "p99 ms", "recall@1", "RSS growth MB"):
        table.add_column(column, justify="right")
    for name, r in results.items():
        table.add_row(name, f"{r['insert_s']:.1f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                      f"{r['recall1']:.3f}", f"{r['rss_growth_mb']:.0f}")  # fmt: skip
    Console().print(table)
    for name, r in results.items():
        curve = ", ".join(
            f"{n:,}: {mb:+.0f} MB" for n, mb in r["rss_curve"][:: max(1, len(r["rss_curve"]) // 8)]
        )  # type: ignore[index]
        Console().print(f"{name}: this process's RSS growth by entries: {curve}")


if __name__ == "__main__":
    main()
