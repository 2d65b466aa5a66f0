"""Neighbourhood agreement (``thrifty.semantic.agreement``) over several shuffled orders.

    python benchmarks/bench_semantic_agreement.py --split dev --orders 3
    python benchmarks/bench_semantic_agreement.py --split test --orders 3 \\
        --agreements "off;margin=0.05,floor=0.85,agree_bar=0.92"

Replays each stream as ``SemanticMatcher.find`` decides (every guard, the policy, the shipped
pair scorer; ``_semantic_streams.replay``) in seeds ``0..orders-1`` and pools hits and wrong
hits, for each policy (``--policies``: ``fixed 0.94``, ``δ=1 %``, ``δ=2 %``, ``δ=1 % bar``:
``VerifiedThreshold(0.01, new_entry_bar=0.94)``) and each agreement rule (``--agreements``,
``;``-separated: ``off``, ``on`` (the default rule), or ``field=value,…`` of
:class:`NeighbourhoodAgreement`, plus ``check=0`` to make a conflict a plain miss instead of a
check); ``bare 0.90`` is a bare cosine bar (no guard, no scorer, no agreement). For banking77
``test`` and the GPT-4 stream the last column counts hits wrong by both annotators (the other
annotator's label, ``second_opinion``, is not the served one either). Streams: banking77 ``train``
and the support ``fit`` half (``--split dev``) or banking77 ``test``, the support ``test`` half
and banking77 ``test`` with GPT-4's labels (``--split test``). ``--sorted`` adds each stream in
file order (intent-sorted). ``--answers M`` folds the labels into M answers (a classifier with
few classes). ``--oos N [--oos-distinct]`` adds the support half with N out-of-scope queries
mixed in (``with_out_of_scope``) and counts hits on them and in-scope queries served one of their
entries. ``--label-noise BAR``: how often banking77 test's two annotators (gold, GPT-4)
disagree on near-duplicate queries. ``--timing N``: per-lookup cost of the extra step (see
:func:`timing`) with the last ``--agreements`` rule.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np

from _semantic_streams import (
    OUT_OF_SCOPE,
    Stream,
    banking77,
    banking77_llm,
    replay,
    second_opinion,
    shuffled,
    support,
    with_out_of_scope,
)
from thrifty import codec
from thrifty.entry import Entry
from thrifty.semantic.agreement import NeighbourhoodAgreement
from thrifty.semantic.base import Embedder, Guard, ThresholdPolicy
from thrifty.semantic.guards import Guards
from thrifty.semantic.matcher import build_matcher
from thrifty.semantic.pair_scorer import PairScorer
from thrifty.semantic.policy import FixedThreshold
from thrifty.semantic.scope import SemanticQuery
from thrifty.semantic.thresholds import VerifiedThreshold
from thrifty.store.memory import MemoryStore

POLICIES: dict[str, Callable[[], ThresholdPolicy]] = {
    "fixed 0.94": lambda: FixedThreshold(0.94),
    "δ=1 %": lambda: VerifiedThreshold(0.01),
    "δ=2 %": lambda: VerifiedThreshold(0.02),
    "δ=1 % bar": lambda: VerifiedThreshold(0.01, new_entry_bar=0.94),
    "δ=2 % bar": lambda: VerifiedThreshold(0.02, new_entry_bar=0.94),
}
BARE = "bare "
"""A policy named ``bare 0.90`` is a bare cosine bar: no guard, no pair scorer, no agreement."""


def policy_of(label: str) -> ThresholdPolicy:
    if label.startswith(BARE):
        return FixedThreshold(float(label[len(BARE) :]))
    return POLICIES[label]()


class MemoGuards(Guard):
    """``Guards()`` with each pair's verdict remembered: the sweep meets the same pairs again."""

    def __init__(self) -> None:
        self.inner = Guards()
        self.memo: dict[tuple[str, str], str | None] = {}

    def blocks(self, query: str, candidate: str) -> str | None:
        key = (query, candidate)
        if key not in self.memo:
            self.memo[key] = self.inner.blocks(query, candidate)
        return self.memo[key]


class MemoScorer:
    """The shipped pair scorer with each (pair, cosine)'s verdict remembered: keyed on the exact
    cosine too, since one pair's cosine differs in its last bits between orders."""

    def __init__(self) -> None:
        self.inner = PairScorer.default()
        self.memo: dict[tuple[str, str, float], bool] = {}

    def accepts(self, query: str, candidate: str, cosine: float) -> bool:
        key = (query, candidate, cosine)
        if key not in self.memo:
            self.memo[key] = self.inner.accepts(query, candidate, cosine)
        return self.memo[key]


def parse_rule(text: str) -> tuple[NeighbourhoodAgreement | None, bool]:
    """``off`` → (None, True); ``margin=0.05,agree_bar=0.9,check=0`` → the rule and the check."""
    if text.strip() == "off":
        return None, True
    if text.strip() == "on":  # the default rule
        return NeighbourhoodAgreement(), True
    fields: dict[str, float | int | None] = {}
    check = True
    for part in text.split(","):
        name, value = (x.strip() for x in part.split("="))
        if name == "check":
            check = value not in ("0", "false", "no")
        elif name in ("min_agree", "k"):
            fields[name] = int(value)
        else:
            fields[name] = None if value == "none" else math.inf if value == "inf" else float(value)
    return NeighbourhoodAgreement(**fields), check  # type: ignore[arg-type]


class VectorTable(Embedder):
    """Returns the precomputed MiniLM vector of a known text (the timing leaves embedding out)."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, texts: list[str], vectors: np.ndarray) -> None:
        super().__init__(cache_size=0)
        self.table = dict(zip(texts, vectors, strict=True))

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


def timing(rule: NeighbourhoodAgreement, queries: int) -> None:
    """``SemanticMatcher.find`` per lookup with agreement off and on: banking77 ``train`` cached
    (10,003 entries, the label as the answer, memory store, usearch HNSW), banking77 ``test``
    queries; every guard, the shipped scorer, fixed 0.94; the embedding is a table look-up, so
    the difference is the extra step (search k 4 → ``rule.k``, every candidate re-read and
    guarded, the neighbours' answers decoded and compared)."""
    train, test = banking77("train"), banking77("test")
    texts = train[0] + test[0]
    embed = VectorTable(texts, np.concatenate([train[2], test[2]]))
    store = MemoryStore()
    matchers = {
        name: build_matcher(
            store, embed, policy=FixedThreshold(0.94), index_path=None, agreement=agreement
        )
        for name, agreement in (("off", None), ("on", rule))
    }
    for matcher in matchers.values():
        matcher.background = False
    for i, (text, label) in enumerate(zip(train[0], train[1], strict=True)):
        entry = Entry(key=f"k{i}", value=codec.encode(label), namespace="default")
        matchers["off"].attach(entry, SemanticQuery(scope="s", text=text))
        store.set(entry)
        for matcher in matchers.values():
            matcher.indexed(entry)
    asked = [SemanticQuery(scope="s", text=t) for t in test[0][:queries]]
    for name, matcher in matchers.items():
        for q in asked[:50]:  # warm up
            matcher.find(q)
        times = []
        for q in asked:
            t0 = time.perf_counter()
            matcher.find(q)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        print(
            f"agreement {name}: find p50 {statistics.median(times):.3f} ms, "
            f"p99 {times[int(0.99 * len(times))]:.3f} ms ({len(times)} lookups, 10,003 entries)"
        )


def folded(stream: Stream, answers: int) -> Stream:
    """The stream with its labels folded into ``answers`` answers by a hash of the label."""
    texts, labels, vecs = stream
    fold = [str(hashlib.sha256(x.encode("utf-8")).digest()[0] % answers) for x in labels]
    return texts, fold, vecs


def label_noise(bar: float) -> None:
    """How often two annotators' labels differ on near-duplicate banking77 ``test`` queries
    (every pair at cosine >= ``bar``): the gold labels, GPT-4's, and pairs where the two disagree
    with each other on either query. A cache serving one of such a pair for the other is wrong by
    one annotator whatever it does."""
    texts, gold, vecs = banking77("test")
    gpt = second_opinion("banking77")
    sims = vecs @ vecs.T
    qi, ci = np.nonzero(np.triu(sims >= bar, k=1))
    g = np.array(gold)
    p = np.array([gpt.get(t, "?") for t in texts])
    gold_diff = g[qi] != g[ci]
    gpt_diff = p[qi] != p[ci]
    print(
        f"banking77 test pairs at cosine >= {bar}: {len(qi)}; gold labels differ "
        f"{100 * gold_diff.mean():.1f} %, GPT-4's differ {100 * gpt_diff.mean():.1f} %, both "
        f"differ {100 * (gold_diff & gpt_diff).mean():.1f} %; the annotators disagree on "
        f"{100 * (g != p).mean():.1f} % of all {len(texts)} queries"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=["dev", "test"], default="dev")
    parser.add_argument("--orders", type=int, default=3)
    parser.add_argument("--policies", default="fixed 0.94,δ=1 %,δ=2 %")
    parser.add_argument("--agreements", default="off;margin=0.05")
    parser.add_argument("--streams", default="", help="comma-separated stream names to keep")
    parser.add_argument("--sorted", action="store_true", help="also each stream in file order")
    parser.add_argument("--limit", type=int, default=None, help="first N queries of each order")
    parser.add_argument(
        "--oos",
        type=int,
        default=0,
        help="add this many out-of-scope queries to the support stream (with_out_of_scope)",
    )
    parser.add_argument(
        "--oos-distinct",
        action="store_true",
        help="each out-of-scope query its own answer (else one fallback answer for all)",
    )
    parser.add_argument(
        "--answers",
        type=int,
        default=0,
        help="fold each stream's labels into this many answers (by a hash of the label): a "
        "classifier with few answers, where neighbours agree by chance more often",
    )
    parser.add_argument(
        "--label-noise",
        type=float,
        default=0.0,
        help="only print how often the two annotators' labels differ on banking77 test pairs "
        "at cosine >= this",
    )
    parser.add_argument(
        "--timing", type=int, default=0, help="time N lookups with the first --agreements rule"
    )
    args = parser.parse_args()
    if args.timing:
        rule, _ = parse_rule(args.agreements.split(";")[-1])
        timing(rule or NeighbourhoodAgreement(), args.timing)
        return
    if args.label_noise:
        label_noise(args.label_noise)
        return
    streams: dict[str, Callable[[], Stream]]
    if args.split == "dev":
        streams = {
            "banking77 train": lambda: banking77("train"),
            "support fit": lambda: support("fit"),
        }
    else:
        streams = {
            "banking77 test": lambda: banking77("test"),
            "support test": lambda: support("test"),
            "GPT-4 labels": banking77_llm,
        }
    if args.oos:
        half = "fit" if args.split == "dev" else "test"
        streams[f"support {half} + {args.oos} out-of-scope"] = lambda: with_out_of_scope(
            support(half), args.oos, args.split, distinct=args.oos_distinct
        )
    if args.streams:
        keep = args.streams.split(",")
        streams = {k: v for k, v in streams.items() if any(w in k for w in keep)}
    guard, scorer = MemoGuards(), MemoScorer()
    seeds: list[int | None] = list(range(args.orders)) + ([None] if args.sorted else [])
    others = {"banking77 test": "banking77", "GPT-4 labels": "gpt-label"}
    print(
        "| policy | agreement | stream | per order: hits / wrong | pooled hits | pooled wrong |"
        " pooled wrong by both annotators |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, load in streams.items():
        stream = load()
        other = second_opinion(others[name]) if name in others else None
        if args.answers:
            stream = folded(stream, args.answers)
            name, other = f"{name}, {args.answers} answers", None
        for label in args.policies.split(","):
            bare = label.startswith(BARE)
            for rule_text in args.agreements.split(";") if not bare else ["off"]:
                rule, check = parse_rule(rule_text)
                shuffled_hits = shuffled_wrong = queries = disputed = 0
                oos_asked = oos_served = 0  # hits on out-of-scope queries; their entries served
                cells = []
                started = time.perf_counter()
                for seed in seeds:
                    texts, labels, vecs = shuffled(stream, seed)
                    cut = (texts[: args.limit], labels[: args.limit], vecs[: args.limit])
                    r = replay(
                        cut,
                        policy_of(label),
                        guards=not bare,
                        guard=guard,
                        scorer=None if bare else scorer,  # type: ignore[arg-type]
                        agreement=rule,
                        conflict_check=check,
                    )
                    tag = "sorted: " if seed is None else ""
                    cells.append(f"{tag}{100 * r.hit_rate:.1f} / {100 * r.wrong_rate:.2f} %")
                    if seed is not None:
                        shuffled_hits += r.hits
                        shuffled_wrong += r.wrong
                        queries += r.queries
                        oos_asked += sum(cut[1][q].startswith(OUT_OF_SCOPE) for q, _ in r.served)
                        oos_served += sum(
                            cut[1][c].startswith(OUT_OF_SCOPE)
                            and not cut[1][q].startswith(OUT_OF_SCOPE)
                            for q, c in r.served
                        )
                        if other is not None:  # wrong by the stream's labels and the other's
                            qs, ls = cut[0], cut[1]
                            disputed += sum(
                                ls[q] != ls[c] and other.get(qs[q]) != ls[c] for q, c in r.served
                            )
                both = (
                    f"{100 * disputed / max(shuffled_hits, 1):.2f} % ({disputed})"
                    if other is not None
                    else "-"
                )
                if "out-of-scope" in name:
                    cells.append(
                        f"pooled: {oos_asked} hits on out-of-scope queries, {oos_served} "
                        "in-scope queries served an out-of-scope entry"
                    )
                print(
                    f"| {label} | {rule_text} | {name} | {'; '.join(cells)} | "
                    f"{100 * shuffled_hits / max(queries, 1):.1f} % | "
                    f"{100 * shuffled_wrong / max(shuffled_hits, 1):.2f} % "
                    f"({shuffled_wrong}/{shuffled_hits}) | {both} | "
                    f"{time.perf_counter() - started:.0f}s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
