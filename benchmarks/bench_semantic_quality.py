"""Semantic-cache quality: are the hits right? QQP pairs, then banking77 and support streams.

    python benchmarks/fit_semantic_thresholds.py --write   # calibrate on QQP dev (once)
    python benchmarks/bench_semantic_quality.py            # report on QQP test + streams
    python benchmarks/bench_semantic_quality.py --no-gptcache

Every figure is on QQP ``test`` rows (the first ``QQP_ROWS['test']`` of the split) and the
banking77 / support test streams; thresholds and the verified policy's prior come from ``dev``.
Embeddings: thrifty's all-MiniLM-L6-v2 (cached in ``benchmarks/out/emb``). GPTCache 0.1.44 runs
in its own virtual environment (``--gptcache-python``) fed the same vectors, so the comparison is
about matching, not about the embedder. Plots go to ``benchmarks/out/semantic_*.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_data import (
    OUT,
    ROOT,
    embed_cached,
    load_banking77,
    load_qqp,
    load_support,
    orient_pairs,
    qqp_vectors,
)
from thrifty.semantic.base import ThresholdPolicy
from thrifty.semantic.guards import Guards
from thrifty.semantic.policy import DEFAULT_THRESHOLD, FixedThreshold
from thrifty.semantic.thresholds import ThresholdCurve, VerifiedThreshold

GPTCACHE_PYTHON = "/work/venvs/gptcache/bin/python"
DELTAS = (0.01, 0.02)
SEED = 0


def pct(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


# -------------------------------------------------------------------- QQP: pairwise curve
def qqp_curve(rows, sims, passed) -> tuple[ThresholdCurve, ThresholdCurve]:
    right = np.array([r["label"] == 1 for r in rows])
    plain = ThresholdCurve.measure(sims, right)
    guarded = ThresholdCurve.measure(np.where(passed, sims, -1.0), right)
    print("\n### QQP test, store `a`, ask `b` (each question against its own pair)\n")
    print(
        f"{len(rows)} test pairs, {right.mean():.1%} duplicates; guards block "
        f"{1 - passed.mean():.1%} of pairs ({1 - passed[right].mean():.1%} of duplicates, "
        f"{1 - passed[~right].mean():.1%} of non-duplicates).\n"
    )
    print(
        "| cosine bar | hit rate | duplicates served | wrong-hit rate "
        "| + guards: hit rate | duplicates served | wrong-hit rate |"
    )
    print("|---|---|---|---|---|---|---|")
    for bar in (0.80, 0.85, 0.90, 0.93, 0.95, 0.97, 0.98, 0.99):
        i = int(np.argmin(np.abs(plain.thresholds - bar)))
        cells = []
        for c in (plain, guarded):
            served_right = c.hits[i] - c.wrong[i]
            cells += [pct(c.hit_rate()[i]), pct(served_right / c.positives), pct(c.wrong_rate()[i])]
        print(f"| {bar:.2f} | " + " | ".join(cells) + " |")
    return plain, guarded


def best_fixed_under(curve: ThresholdCurve, bound: float) -> tuple[float, float]:
    """(bar, hit rate) of the fixed bar with the most hits whose measured wrong rate ≤ bound
    (an oracle choice on test: generous to the fixed bar)."""
    best = (math.inf, 0.0)
    for i, bar in enumerate(curve.thresholds):
        if curve.hits[i] and curve.wrong_rate()[i] <= bound and curve.hit_rate()[i] > best[1]:
            best = (float(bar), float(curve.hit_rate()[i]))
    return best


# --------------------------------------------------------------- QQP: the verified stream
def decide(policy: ThresholdPolicy, key: str, sim: float) -> str:
    if policy.should_hit(key, sim):
        return "verify" if policy.wants_verification(key, sim) else "hit"
    return "verify" if policy.wants_verification(key, sim) else "miss"


def qqp_stream(rows, sims, passed, policy: ThresholdPolicy, *, guards: bool) -> dict:
    """Each test pair once, in a seeded random order: the cached question (the side that appears
    in more pairs) is the entry, the other is asked. A hit on a non-duplicate is wrong. A check
    ("verify") costs one model call and teaches the policy the pair's label."""
    oriented = orient_pairs(rows)
    order = list(range(len(rows)))
    random.Random(SEED).shuffle(order)
    hits = wrong = checks = 0
    for i in order:
        cached, _ = oriented[i]
        if guards and not passed[i]:
            continue
        action = decide(policy, cached, float(sims[i]))
        if action == "hit":
            hits += 1
            wrong += rows[i]["label"] == 0
        elif action == "verify":
            checks += 1
            policy.record(cached, float(sims[i]), rows[i]["label"] == 1)
    n = len(rows)
    return {
        "hit_rate": hits / n,
        "wrong_rate": wrong / hits if hits else float("nan"),
        "hits": hits,
        "wrong": wrong,
        "checks": checks,
        "model_calls": n - hits,
    }


# ---------------------------------------------------- QQP: all `a` stored, nearest decides
def components(rows) -> dict[str, int]:
    """Duplicate classes: connected components of label-1 edges (union-find)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in rows:
        find(r["a"]), find(r["b"])
        if r["label"] == 1:
            parent[find(r["a"])] = find(r["b"])
    roots: dict[str, int] = {}
    return {x: roots.setdefault(find(x), len(roots)) for x in parent}


def nearest(cached_vecs: np.ndarray, query_vecs: np.ndarray, k: int = 4):
    idx = np.empty((len(query_vecs), k), dtype=np.int64)
    sim = np.empty((len(query_vecs), k), dtype=np.float32)
    for start in range(0, len(query_vecs), 2048):
        s = query_vecs[start : start + 2048] @ cached_vecs.T
        top = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, top, 1), axis=1)
        idx[start : start + 2048] = np.take_along_axis(top, order, 1)
        sim[start : start + 2048] = np.take_along_axis(s, idx[start : start + 2048], 1)
    return idx, sim


def qqp_index(rows, args) -> list[tuple[str, dict]]:
    """Store every distinct `a`, ask every `b`; the nearest stored question answers. Right when
    it is the pair's own `a` on a duplicate pair, or in the same duplicate class (label-1
    components over the whole test split); any other hit counts as wrong."""
    a_vecs, b_vecs = qqp_vectors(rows, "qqp-test")
    cached = sorted({r["a"] for r in rows})
    c_vecs = _first_rows(rows, a_vecs, cached)
    klass = components(load_qqp("test", None))
    rows = rows[: args.index_queries]  # every `a` stays stored; fewer `b` asked (GPTCache's time)
    b_vecs = b_vecs[: args.index_queries]
    idx, sim = nearest(c_vecs, b_vecs)
    guards = Guards()

    def right(r, text: str) -> bool:
        same = klass.get(text) is not None and klass.get(text) == klass.get(r["b"])
        return (text == r["a"] and r["label"] == 1) or same

    def score(pick: Callable[[int], int | None]) -> dict:
        hits = wrong = 0
        for qi, r in enumerate(rows):
            ci = pick(qi)
            if ci is None:
                continue
            hits += 1
            wrong += not right(r, cached[ci])
        return {"hit_rate": hits / len(rows), "wrong_rate": wrong / hits if hits else math.nan}

    results = []
    for bar in (0.90,):
        results.append(
            (
                f"thrifty fixed {bar} (nearest only)",
                score(lambda q, b=bar: idx[q, 0] if sim[q, 0] >= b else None),
            )
        )

        def guarded(q: int, b: float = bar) -> int | None:
            for j in range(idx.shape[1]):
                if sim[q, j] >= b and guards.allows(rows[q]["b"], cached[idx[q, j]]):
                    return int(idx[q, j])
            return None

        results.append((f"thrifty fixed {bar} + guards (best of 4)", score(guarded)))
    if args.gptcache:
        answers = run_gptcache(cached, c_vecs, [r["b"] for r in rows], b_vecs, args)
        for threshold, picks in answers.items():
            label = f"GPTCache 0.1.44, similarity_threshold {threshold}"
            label += f" (cosine ≥ {2 * float(threshold) - 1:.2f})"
            results.append((label, score(lambda q, p=picks: None if p[q] < 0 else p[q])))
    print("\n### QQP test, all `a` stored in one cache, each `b` asked (nearest decides)\n")
    print(f"{len(cached)} distinct cached questions, the first {len(rows)} `b` asked.\n")
    print("| matcher | hit rate | wrong-hit rate |\n|---|---|---|")
    for name, res in results:
        print(f"| {name} | {pct(res['hit_rate'])} | {pct(res['wrong_rate'])} |")
    return results


def _first_rows(rows, a_vecs, cached):
    first: dict[str, int] = {}
    for j, r in enumerate(rows):
        first.setdefault(r["a"], j)
    return a_vecs[[first[t] for t in cached]]


def run_gptcache(cached, c_vecs, queries, q_vecs, args) -> dict[str, list[int]]:
    with tempfile.TemporaryDirectory() as tmp:
        job, out = Path(tmp) / "job.npz", Path(tmp) / "out.json"
        np.savez(
            job,
            kind="quality",
            cached_texts=np.array(cached),
            cached_vectors=c_vecs,
            query_texts=np.array(queries),
            query_vectors=q_vecs,
            thresholds=np.array([0.8, 0.9, 0.95]),
        )
        subprocess.run(
            [
                args.gptcache_python,
                str(ROOT / "benchmarks" / "_gptcache_runner.py"),
                str(job),
                str(out),
            ],
            check=True,
            cwd=tmp,
        )
        return json.loads(out.read_text())["quality"]


# ------------------------------------------------------------- intent streams (banking77…)
def intent_stream(texts, intents, vecs, make_policy, *, use_guards: bool, every: int = 250):
    """Replay in order. Each query, as ``SemanticMatcher.find``: of the 4 nearest cached
    questions, the nearest that the guards pass decides: the policy serves it, checks it (the
    miss's model call; the label is whether the intents agree) or lets it miss. Every answered
    miss is cached."""
    policy = make_policy()
    guards = Guards()
    matrix = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
    cached_texts: list[str] = []
    cached_intents: list[str] = []
    hits = wrong = checks = 0
    curve = []
    for qi, text in enumerate(texts):
        served = False
        n = len(cached_texts)
        if n:
            s = matrix[:n] @ vecs[qi]
            top = np.argpartition(-s, 3)[:4] if n > 4 else np.arange(n)
            for ci in top[np.argsort(-s[top])]:  # as SemanticMatcher.find: the nearest
                if use_guards and not guards.allows(text, cached_texts[ci]):  # unblocked one
                    continue  # decides
                key, sim = str(ci), float(s[ci])
                action = decide(policy, key, sim)  # a sampled re-check of a hit is a check
                if action == "hit":
                    served = True
                    hits += 1
                    wrong += cached_intents[ci] != intents[qi]
                elif action == "verify":
                    checks += 1
                    policy.record(key, sim, cached_intents[ci] == intents[qi])
                break
        if not served:
            matrix[n] = vecs[qi]
            cached_texts.append(text)
            cached_intents.append(intents[qi])
        if (qi + 1) % every == 0 or qi + 1 == len(texts):
            curve.append((qi + 1, hits / (qi + 1), wrong / hits if hits else 0.0))
    return {
        "hit_rate": hits / len(texts),
        "wrong_rate": wrong / hits if hits else math.nan,
        "checks": checks,
        "curve": curve,
        "entries": len(cached_texts),
        "hits": hits,
        "wrong": wrong,
    }


def plot_streams(name: str, runs: dict[str, dict]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for label, res in runs.items():
        xs = [c[0] for c in res["curve"]]
        left.plot(xs, [c[1] for c in res["curve"]], label=label)
        right.plot(xs, [c[2] for c in res["curve"]], label=label)
    left.set(title=f"{name}: hit rate so far", xlabel="queries replayed", ylabel="hit rate")
    right.set(
        title=f"{name}: wrong-hit rate so far",
        xlabel="queries replayed",
        ylabel="wrong hits / hits",
    )
    right.legend(fontsize=7)
    fig.tight_layout()
    path = OUT / f"semantic_stream_{name}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_qqp(plain: ThresholdCurve, guarded: ThresholdCurve, points: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    keep = plain.thresholds >= 0.75
    ax.plot(plain.hit_rate()[keep], plain.wrong_rate()[keep], label="fixed bar")
    ax.plot(guarded.hit_rate()[keep], guarded.wrong_rate()[keep], label="fixed bar + guards")
    for label, (hit, wrong) in points.items():
        ax.scatter([hit], [wrong], s=25)
        ax.annotate(label, (hit, wrong), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set(
        xlabel="hit rate (hits / questions asked)",
        ylabel="wrong-hit rate (wrong / hits)",
        title="QQP test: store a, ask b (all-MiniLM-L6-v2)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = OUT / "semantic_qqp_curve.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def qqp_pairs(rows) -> None:
    a_vecs, b_vecs = qqp_vectors(rows, "qqp-test")
    sims = np.einsum("ij,ij->i", a_vecs, b_vecs)
    guards = Guards()
    passed = np.array([guards.allows(asked, cached) for cached, asked in orient_pairs(rows)])
    plain, guarded = qqp_curve(rows, sims, passed)

    print("\n### QQP test as an online stream (verified mode)\n")
    print(
        "| policy | hit rate | wrong-hit rate | model calls | of which checks | "
        "best fixed bar at that wrong rate: hit rate (bar) | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    points = {}
    runs = [
        (f"fixed {DEFAULT_THRESHOLD} (dev default)", lambda: FixedThreshold(), False),
        ("fixed 0.9 (seeds' advice)", lambda: FixedThreshold(0.9), False),
        ("fixed 0.9 + guards", lambda: FixedThreshold(0.9), True),
    ]
    for delta in DELTAS:
        runs.append(
            (f"verified δ={delta:.0%} + guards", lambda d=delta: VerifiedThreshold(d), True)
        )
    runs.append(("verified δ=1% without guards", lambda: VerifiedThreshold(0.01), False))
    for label, make, use_guards in runs:
        res = qqp_stream(rows, sims, passed, make(), guards=use_guards)
        curve = guarded if use_guards else plain
        bound = res["wrong_rate"] if not math.isnan(res["wrong_rate"]) else 0.0
        bar, fixed_rate = best_fixed_under(curve, max(bound, 1e-9))
        ratio = res["hit_rate"] / fixed_rate if fixed_rate else math.inf
        print(
            f"| {label} | {pct(res['hit_rate'])} | {pct(res['wrong_rate'])} | "
            f"{res['model_calls']} | {res['checks']} | {pct(fixed_rate)} ({bar}) | "
            f"{ratio:.1f}× |"
        )
        points[label] = (
            res["hit_rate"],
            0.0 if math.isnan(res["wrong_rate"]) else res["wrong_rate"],
        )
    for delta in DELTAS:
        for name, curve in (("plain", plain), ("guards", guarded)):
            bar, rate = best_fixed_under(curve, delta)
            print(
                f"\nbest fixed bar ({name}) with wrong-hit rate ≤ {delta:.0%} on test "
                f"(oracle): {bar}, hit rate {pct(rate)}"
            )
    print(f"\nplot: {plot_qqp(plain, guarded, points).relative_to(ROOT)}")


def qqp_questions(rows) -> list[tuple[str, str]]:
    """Every distinct question of the test rows once, in a seeded random order, with its duplicate
    class (label-1 components over the whole test split) as its "intent"."""
    klass = components(load_qqp("test", None))
    texts = sorted({r["a"] for r in rows} | {r["b"] for r in rows})
    random.Random(SEED).shuffle(texts)
    return [(t, str(klass[t])) for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-gptcache", dest="gptcache", action="store_false")
    parser.add_argument("--gptcache-python", default=GPTCACHE_PYTHON)
    parser.add_argument(
        "--sections",
        default="pairs,index,streams,qqp-stream",
        help="comma-separated: pairs, index (with GPTCache), streams (banking77, support), "
        "qqp-stream (QQP test questions replayed as one stream)",
    )
    parser.add_argument("--index-queries", type=int, default=4000)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    sections = set(args.sections.split(","))
    rows = load_qqp("test")
    if "pairs" in sections:
        qqp_pairs(rows)
    if "index" in sections:
        qqp_index(rows, args)
    streams = []
    if "streams" in sections:
        streams += [("banking77", load_banking77("test")), ("support", load_support())]
    if "qqp-stream" in sections:
        streams.append(("qqp", qqp_questions(rows)))
    for name, data in streams:
        texts = [t for t, _ in data]
        intents = [i for _, i in data]
        if name == "qqp":  # the same sorted text list as qqp_vectors, so the cache is reused
            base = sorted(texts)
            where = {t: i for i, t in enumerate(base)}
            vecs = embed_cached("qqp-test", base)[[where[t] for t in texts]]
        else:
            vecs = embed_cached("banking77-test" if name == "banking77" else name, texts)
        orders = [("shuffled", None)] if name == "qqp" else [("file order", None), ("shuffled", 0)]
        for order, seed in orders:
            idx = list(range(len(texts)))
            if seed is not None:
                random.Random(seed).shuffle(idx)
            run_stream(name, order, [texts[i] for i in idx], [intents[i] for i in idx], vecs[idx])


SWEEP_BARS = (0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
STREAM_POLICIES = [
    ("fixed 0.9", lambda: FixedThreshold(0.9), False),
    (f"fixed {DEFAULT_THRESHOLD} + guards", lambda: FixedThreshold(), True),
    ("verified δ=1% + guards", lambda: VerifiedThreshold(0.01), True),
    ("verified δ=2% + guards", lambda: VerifiedThreshold(0.02), True),
    (
        "verified δ=1% + guards, adaptive prior",
        lambda: VerifiedThreshold(0.01, adapt_every=200),
        True,
    ),
    (
        "verified δ=2% + guards, adaptive prior",
        lambda: VerifiedThreshold(0.02, adapt_every=200),
        True,
    ),
]


def run_stream(name: str, order: str, texts, intents, vecs) -> None:
    results = {
        label: intent_stream(texts, intents, vecs, make, use_guards=use_guards)
        for label, make, use_guards in STREAM_POLICIES
    }
    sweep = {}
    if name != "qqp":  # the fixed bars (+ guards) on the same stream, for the ratio column
        for bar in SWEEP_BARS:
            res = intent_stream(
                texts, intents, vecs, lambda b=bar: FixedThreshold(b), use_guards=True
            )
            sweep[bar] = (res["hit_rate"], res["wrong_rate"])
    what = "duplicate class" if name == "qqp" else "intent"
    print(
        f"\n### {name} test, {order} ({len(texts)} queries; a hit is wrong when the cached "
        f"question's {what} differs)\n"
    )
    print(
        "| policy | hit rate | wrong-hit rate | checks (model calls) | entries | best fixed bar "
        "+ guards with no more wrong hits: hit rate (bar) | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, res in results.items():
        wrong = 0.0 if math.isnan(res["wrong_rate"]) else res["wrong_rate"]
        fits = [(h, b) for b, (h, w) in sweep.items() if not math.isnan(w) and w <= wrong]
        best = max(fits, default=(0.0, None))
        ratio = "–" if not sweep else (f"{res['hit_rate'] / best[0]:.1f}×" if best[0] else "∞")
        print(
            f"| {label} | {pct(res['hit_rate'])} | {pct(res['wrong_rate'])} "
            f"({res['wrong']}/{res['hits']}) | {res['checks']} | {res['entries']} | "
            f"{pct(best[0]) if sweep else '–'} ({best[1]}) | {ratio} |"
        )
    if sweep:
        print(
            "\nfixed bars + guards on this stream: "
            + ", ".join(f"{b}: {pct(h)} hits / {pct(w)} wrong" for b, (h, w) in sweep.items())
        )
    tag = f"{name}_{order.replace(' ', '_')}"
    print(f"\nplot: {plot_streams(tag, results).relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
