"""Upkeep of the semantic index: inserts, search, memory, save/load, rebuild from a SQLite store.

    PYTHONPATH=src python benchmarks/semantic_index_upkeep.py --entries 20000

One scope holding N unit vectors of 384 dimensions (random: this measures the index, not
matching quality; ``bench_semantic_speed.py`` measures lookups on QQP-derived vectors). Rows:
one-at-a-time inserts (a miss being stored), bulk inserts (a rebuild), search p50/p99 (k=4),
resident memory per entry, save and load of the index folder, and a full ``Cache`` rebuild from
a SQLite file of N semantic entries (filled with the hashing embedder so filling stays cheap).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from thrifty.cache import Cache, CoalesceSettings, SemanticSettings
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.semantic.index import ScopedIndex, usearch_index_class

DIM = 384


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def unit(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def index_rows(n: int, folder: Path) -> None:
    usearch_index_class()  # load the libraries before measuring memory
    vectors = unit(n)
    keys = [f"{i:064x}" for i in range(n)]
    text = "how do I reset the password of my account on the mobile app"
    before = rss_mb()
    single = ScopedIndex(DIM, model="m", path=folder / "single")
    started = time.perf_counter()
    for key, vec in zip(keys, vectors, strict=True):
        single.add(key, "scope", vec, text)
    single_rate = n / (time.perf_counter() - started)
    per_entry = (rss_mb() - before) * 2**20 / n
    bulk = ScopedIndex(DIM, model="m")
    started = time.perf_counter()
    for start in range(0, n, 2048):
        chunk = slice(start, start + 2048)
        bulk.add_many(keys[chunk], ["scope"] * len(keys[chunk]), vectors[chunk],
                      [text] * len(keys[chunk]))  # fmt: skip
    bulk_rate = n / (time.perf_counter() - started)
    queries = unit(300, seed=1)
    times = []
    for q in queries:
        t = time.perf_counter()
        single.search("scope", q, 4)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    started = time.perf_counter()
    single.save()
    save_s = time.perf_counter() - started
    size_mb = sum(f.stat().st_size for f in (folder / "single").iterdir()) / 2**20
    started = time.perf_counter()
    ScopedIndex(DIM, model="m", path=folder / "single").load()
    load_s = time.perf_counter() - started
    print(f"| index, {n:,} rows in one scope | single inserts/s {single_rate:,.0f} "
          f"| bulk inserts/s {bulk_rate:,.0f} | search p50 {statistics.median(times):.3f} ms, "
          f"p99 {times[int(len(times) * 0.99) - 1]:.3f} ms | {per_entry:,.0f} B/entry resident "
          f"| save {save_s:.2f} s, load {load_s:.2f} s, {size_mb:.1f} MB on disk |")  # fmt: skip


def cache_rebuild(n: int, folder: Path) -> None:
    url = f"sqlite:///{folder}/cache.db"
    embedder = HashingEmbedder(dim=DIM)
    writer = Cache(
        url,
        semantic=SemanticSettings(embedder=embedder),
        coalesce=CoalesceSettings(shared_leases=False),
    )
    for i in range(n):
        request = {
            "model": "m",
            "temperature": 0,
            "messages": [
                {"role": "system", "content": "support"},
                {"role": "user", "content": f"question {i} about topic {i % 97} and item {i * 7}"},
            ],
        }
        writer.set_request(request, {"answer": i})  # fmt: skip
    writer.close()
    shutil.rmtree(folder / "cache.db.semantic")
    reader = Cache(url, semantic=SemanticSettings(embedder=embedder))
    reader.semantic.background = False
    started = time.perf_counter()
    reader.semantic._prepare()  # no index folder: rebuilt from the store
    rebuild_s = time.perf_counter() - started
    rows = len(reader.semantic.index)
    reader.close()
    again = Cache(url, semantic=SemanticSettings(embedder=embedder))
    started = time.perf_counter()
    loaded = again.semantic.index.load()
    load_s = time.perf_counter() - started
    again.close()
    print(
        f"| Cache(sqlite), {n:,} semantic entries | rebuild from the store {rebuild_s:.2f} s "
        f"({rows:,} rows) | load of the saved index {load_s:.2f} s (loaded: {loaded}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=20_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="thrifty-index-bench-"))
    try:
        index_rows(args.entries, folder)
        cache_rebuild(args.entries, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
