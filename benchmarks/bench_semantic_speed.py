"""Semantic lookup latency, embedding included, at 10k / 100k (/ 1M) entries, beside GPTCache.

    python benchmarks/bench_semantic_speed.py                  # 10k and 100k, with GPTCache
    python benchmarks/bench_semantic_speed.py --sizes 1000000 --no-gptcache  # the 1M leg

thrifty's lookup is the real ``SemanticMatcher.find``, built as ``thrifty.Cache(semantic=True)``
builds it (``build_matcher``: the local MiniLM through onnxruntime, every guard, the shipped pair
scorer, ``VerifiedThreshold(0.02)``, a ``memory://`` store without an entry cap, the index in
memory: usearch HNSW above 4,096 rows in the one scope), timed twice on the same store and index:
neighbourhood agreement off (search k=4, the nearest live candidate the guards pass decides) and
on (``NeighbourhoodAgreement()``: search k=8, every candidate above the floor 0.75 read from the
store and guarded, the neighbours' answers decoded and compared). One matcher serves both; its
``agreement`` attribute is swapped between timed blocks (``find`` reads it, and its k, at each
lookup). ``find`` replaced an earlier leg that wrote the checks out here (its figures, and that
its ``MemoryStore()`` kept only the last 100,000 of 1M entries, are in benchmarks/RESULTS.md);
the store here has no cap.

Blocks of ``--block`` queries run each variant in turn, the order rotating from block to block,
so a change of load on the shared machine hits every variant alike; the guards' and the scorer's
per-text feature caches are emptied before each variant's block, so no variant finds a query's
features computed by another. Each lookup embeds its question anew (the embedder keeps no
cache); ``embedding`` is the MiniLM call inside the lookup, ``lookup minus embedding`` the rest.

Three query sets (``--query-sets``): ``unseen``, real QQP questions never stored (as before: most
lookups end on a candidate below the bars, few neighbours above the floor); ``stored``, QQP
questions that are stored (and beyond 10k entries so are their noisy copies, each with another
answer): the nearest candidate passes the policy and agreement reads and decodes every neighbour
above the floor and finds a conflict (the guards pass those copies at once: same text); and
``paraphrase``, the other question of a QQP duplicate pair whose first question is stored (itself
not stored): near the stored question and its copies, with a different text, so every neighbour
above the floor goes through every guard as well.

Fill: N entries in one scope, each with its semantic record (scope, text, vector: what
``SemanticMatcher.attach`` puts in an entry, here with the fill vector instead of embedding the
text again) and an answer that varies (``answer {i % 77}``: copies of one question carry
different answers, so agreement meets conflicts and decodes every neighbour).
``--fill write`` (default) stores each entry and hands it to ``matcher.indexed``, as a cache
write does; ``--fill rebuild`` stores them all and lets the matcher's first lookup rebuild the
index from the store (bulk inserts on every core), as a restart does. Vectors are QQP-derived:
the MiniLM vectors of the benchmark's QQP questions, and beyond them the same vectors with small
Gaussian noise, re-normalized (so the index holds realistic neighbourhoods at any N).
GPTCache 0.1.44 (sqlite + faiss, its documented semantic setup, ``max_size`` above N) runs in
its own virtual environment with thrifty's same MiniLM as its embedding function, on the
``unseen`` queries.
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
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_data import OUT, ROOT, embedder, load_qqp, qqp_vectors
from thrifty import codec
from thrifty.entry import Entry
from thrifty.semantic.agreement import NeighbourhoodAgreement
from thrifty.semantic.matcher import build_matcher
from thrifty.semantic.record import encode_record
from thrifty.semantic.scope import SemanticQuery
from thrifty.semantic.thresholds import VerifiedThreshold
from thrifty.store.memory import MemoryStore

GPTCACHE_PYTHON = "/work/venvs/gptcache/bin/python"
SCOPE = "bench-scope"
ANSWERS = 77
VARIANTS = ("find, agreement off", "find, agreement on")


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


class TimedEmbedder:
    """The matcher's embedder, timing each ``embed_one`` (the lookup's embedding share)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name, self.dim = inner.name, inner.dim
        self.last_ms = 0.0

    def embed_one(self, text: str) -> np.ndarray:
        t0 = time.perf_counter()
        vector = self.inner.embed_one(text)
        self.last_ms = (time.perf_counter() - t0) * 1000
        return vector


def build(n: int, vectors: np.ndarray, texts: list[str], fill: str) -> tuple:
    """The store and matcher holding ``n`` entries, the seconds the fill took and the MB it
    grew the process by (the model and the pair scorer, loaded before, not counted)."""
    emb = embedder()
    store = MemoryStore(max_entries=None)  # the default cap (100k) would evict most of 1M
    matcher = build_matcher(store, emb, policy=VerifiedThreshold(0.02), index_path=None)
    assert matcher.guard is not None and matcher.scorer is not None, "every check must be on"
    matcher.background = False
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    for i in range(n):
        text = texts[i % len(texts)]
        entry = Entry(
            key=f"k{i}",
            value=codec.encode(f"answer {i % ANSWERS}"),
            semantic=encode_record(SCOPE, text, emb.name, vectors[i]),
        )
        store.set(entry)
        if fill == "write":
            matcher.indexed(entry)
    if fill == "rebuild":
        matcher.find(SemanticQuery(SCOPE, "warm up"))  # the first lookup rebuilds the index
    assert len(matcher.index) == n and store.get(f"k{n - 1}") is not None and store.get("k0")
    return store, matcher, time.perf_counter() - started, rss_mb() - before


def outcome(match) -> str:
    if match is None:
        return "miss"
    region = "" if match.region is None else f" ({match.region.value})"
    return ("check" if match.verify else "hit") + region


def text_caches() -> list:
    """The guards' and the pair scorer's per-text feature caches (the bounded ``lru_cache``
    functions; the unbounded ones hold shipped tables, not texts)."""
    from thrifty.semantic import guards, pair_scorer, traps

    found = []
    for module in (guards, pair_scorer, traps):
        for value in vars(module).values():
            info = getattr(value, "cache_info", None)
            if callable(info) and info().maxsize is not None and value not in found:
                found.append(value)
    return found


def time_queries(
    lookups: dict[str, Callable], asked: list[SemanticQuery], timed: TimedEmbedder, block: int
) -> dict:
    """Each variant over ``asked``, block by block, the order rotating; before each variant's
    block the per-text caches are emptied, so no variant sees a query's features computed by
    another (a new query's are never cached in a cache's life either)."""
    caches = text_caches()
    for lookup in lookups.values():  # warm up
        for q in asked[:20]:
            lookup(q)
    total: dict[str, list[float]] = {v: [] for v in lookups}
    embed: dict[str, list[float]] = {v: [] for v in lookups}
    outcomes: dict[str, Counter] = {v: Counter() for v in lookups}
    names = list(lookups)
    for b, start in enumerate(range(0, len(asked), block)):
        for name in names[b % len(names) :] + names[: b % len(names)]:
            lookup = lookups[name]
            for cache in caches:
                cache.cache_clear()
            for q in asked[start : start + block]:
                t0 = time.perf_counter()
                match = lookup(q)
                total[name].append((time.perf_counter() - t0) * 1000)
                embed[name].append(timed.last_ms)
                outcomes[name][outcome(match)] += 1
    out = {}
    for name in names:
        t, e = total[name], embed[name]
        bare = [a - b for a, b in zip(t, e, strict=True)]
        out[name] = {
            "p50": statistics.median(t),
            "p99": percentile(t, 0.99),
            "embed_p50": statistics.median(e),
            "match_p50": statistics.median(bare),
            "match_p99": percentile(bare, 0.99),
            "outcomes": dict(outcomes[name]),
            "lookups": len(t),
        }
    return out


def thrifty_leg(
    n: int,
    vectors: np.ndarray,
    texts: list[str],
    query_sets: dict[str, list[str]],
    fill: str,
    block: int,
) -> dict:
    _store, matcher, build_s, memory = build(n, vectors, texts, fill)
    timed = TimedEmbedder(matcher.embedder)
    matcher.embedder = timed
    rule = NeighbourhoodAgreement()

    def find_with(agreement: NeighbourhoodAgreement | None) -> Callable:
        def lookup(query: SemanticQuery) -> object:
            matcher.agreement = agreement
            return matcher.find(query)

        return lookup

    lookups = dict(zip(VARIANTS, (find_with(None), find_with(rule)), strict=True))
    sets = {}
    for label, queries in query_sets.items():
        asked = [SemanticQuery(SCOPE, q) for q in queries]
        result = time_queries(lookups, asked, timed, block)
        near = []  # outside the timing: how many of the 8 nearest are above the agreement floor
        for q in asked:
            found = matcher.index.search(SCOPE, timed.inner.embed_one(q.text), rule.k)
            near.append(sum(c.similarity >= rule.floor for c in found))
        sets[label] = {
            "variants": result,
            "near_floor_mean": statistics.mean(near),
            "near_floor_p50": statistics.median(near),
        }
    matcher.agreement = None
    return {"build_s": build_s, "fill": fill, "bytes_per_entry": memory * 2**20 / n, "sets": sets}


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
    parser.add_argument("--block", type=int, default=25, help="queries per variant in turn")
    parser.add_argument("--fill", choices=["write", "rebuild"], default="write")
    parser.add_argument(
        "--query-sets",
        default="unseen,stored,paraphrase",
        help="comma-separated: unseen, stored, paraphrase",
    )
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
    step = max(1, min(min(sizes), len(texts)) // args.queries)
    stored = set(texts[: min(sizes)])
    query_sets = {
        "unseen": queries,
        "stored": texts[::step][: args.queries],  # stored in every size (with copies beyond)
        "paraphrase": [  # a duplicate of a stored question, itself not stored
            r["b"] for r in rows[: min(sizes)] if r["label"] == 1 and r["b"] not in stored
        ][: args.queries],
    }
    query_sets = {k: query_sets[k] for k in args.query_sets.split(",")}
    rng = np.random.default_rng(0)
    vectors = fill_vectors(max(sizes), a_vecs, rng)
    print(
        "| entries | queries | lookup | build s | lookup p50 ms | p99 ms | embedding p50 ms | "
        "lookup minus embedding p50 / p99 ms | memory / entry | outcomes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    for n in sizes:
        mine = thrifty_leg(n, vectors, texts, query_sets, args.fill, args.block)
        results[n] = {"thrifty": mine}
        for label, got in mine["sets"].items():
            for name, r in got["variants"].items():
                told = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
                print(
                    f"| {n:,} | {label} | thrifty {name} | {mine['build_s']:.0f} ({args.fill}) | "
                    f"{r['p50']:.2f} | {r['p99']:.2f} | {r['embed_p50']:.2f} | "
                    f"{r['match_p50']:.2f} / {r['match_p99']:.2f} | "
                    f"{mine['bytes_per_entry']:.0f} B | {told} |",
                    flush=True,
                )
            print(
                f"({n:,}, {label}: candidates of the 8 nearest at cosine ≥ 0.75 per query: "
                f"mean {got['near_floor_mean']:.1f}, median {got['near_floor_p50']:.0f})",
                flush=True,
            )
        if args.gptcache and n <= args.gptcache_max and "unseen" in query_sets:
            other = gptcache_leg(n, vectors, texts, queries, args.gptcache_python)
            results[n]["gptcache"] = other
            every = mine["sets"]["unseen"]["variants"][VARIANTS[1]]
            ratio = other["p50"] / every["p50"]
            bare = other["match_p50"] / max(every["match_p50"], 1e-3)
            print(
                f"| {n:,} | unseen | GPTCache 0.1.44 (same MiniLM, sqlite + faiss) | "
                f"{other['build_s']:.0f} | {other['p50']:.2f} | {other['p99']:.2f} | "
                f"{other['embed_p50']:.2f} | {other['match_p50']:.2f} | "
                f"(RSS {other['rss_mb']:.0f} MB) | {ratio:.1f}× slower than find with "
                f"agreement ({bare:.1f}× without the embedding) |",
                flush=True,
            )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"semantic_speed_{'_'.join(map(str, sizes))}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
