"""The verified policy over several shuffled orders of a stream: one order is one sample.

    python benchmarks/bench_semantic_orders.py --split test --orders 3
    python benchmarks/bench_semantic_orders.py --split dev --rules "δ alone,bar 0.94"

``bench_semantic_streams.py`` replays each stream in one seeded order; on banking77 ``test``
(3,080 queries, ~500 hits, a handful wrong) the wrong share of one order moves by a point
between seeds (δ = 1 %: 0.87 / 1.45 / 2.28 % for seeds 0 / 1 / 2). This replays the verified
policy (every guard, the policy, the shipped pair scorer, as ``SemanticMatcher.find``) over
seeds ``0..orders-1`` and pools hits and wrong hits. Rules: the new-entry rule of
``VerifiedThreshold`` (``δ alone``: a never-checked entry is served only when ``P(wrong) ≤ δ``;
``bar X``: from cosine X while no check found the entry wrong). Streams: banking77 ``train``
and the support ``fit`` half (``--split dev``) or banking77 ``test`` and the support ``test``
half (``--split test``); ``--limit`` cuts each order to its first N queries (banking77
``train`` at the size of its ``test`` stream: ``--limit 3080``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_streams import banking77, replay, shuffled, support
from thrifty.semantic.pair_scorer import PairScorer
from thrifty.semantic.thresholds import VerifiedThreshold


def new_entry_bar(rule: str) -> float:
    """``δ alone`` → inf; ``bar 0.94`` → 0.94."""
    return math.inf if rule == "δ alone" else float(rule.removeprefix("bar "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=["dev", "test"], default="test")
    parser.add_argument("--orders", type=int, default=3)
    parser.add_argument("--deltas", default="0.01")
    parser.add_argument("--rules", default="δ alone,bar 0.94,bar 0.95,bar 0.96")
    parser.add_argument(
        "--limit", type=int, default=None, help="first N queries of each order (dev at test size)"
    )
    args = parser.parse_args()
    if args.split == "dev":
        streams = {"banking77 train": banking77("train"), "support fit": support("fit")}
    else:
        streams = {"banking77 test": banking77("test"), "support test": support("test")}
    scorer = PairScorer.default()
    print("| δ | new entries | stream | per order: hits / wrong | pooled hits | pooled wrong |")
    print("|---|---|---|---|---|---|")
    for delta in map(float, args.deltas.split(",")):
        for rule in args.rules.split(","):
            for name, stream in streams.items():
                hits = wrong = 0
                cells = []
                for seed in range(args.orders):
                    policy = VerifiedThreshold(delta, new_entry_bar=new_entry_bar(rule))
                    texts, labels, vecs = shuffled(stream, seed)
                    cut = (texts[: args.limit], labels[: args.limit], vecs[: args.limit])
                    r = replay(cut, policy, guards=True, scorer=scorer)
                    hits, wrong = hits + r.hits, wrong + r.wrong
                    cells.append(f"{100 * r.hit_rate:.1f} / {100 * r.wrong_rate:.2f} %")
                queries = args.orders * len(stream[0][: args.limit])
                print(
                    f"| {delta:.1%} | {rule} | {name} | {'; '.join(cells)} | "
                    f"{100 * hits / queries:.1f} % | {100 * wrong / max(hits, 1):.2f} % "
                    f"({wrong}/{hits}) |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
