"""Calibrate the semantic thresholds on query streams (never on ``test`` rows, never on QQP).

    python benchmarks/fit_semantic_thresholds.py            # prints the fit
    python benchmarks/fit_semantic_thresholds.py --write    # also writes the shipped prior

Fits on banking77 ``train`` and the support set's ``fit`` half (by a hash of the text, see
``_semantic_streams.py``), each replayed in three seeded random orders with every query cached:
each query meets its nearest earlier query that thrifty's whole decision would consider (every
guard of ``guards.py`` passes it and the shipped pair scorer does not doubt it, as
``SemanticMatcher.find`` decides), and the pair is right when the two share an intent. From
those pairs:

- the fixed default bar: the lowest bar whose wrong-hit rate is ≤ 2 % with 95 % confidence
  (Wilson upper bound) on **each** stream alone (the highest of the streams' bars, so that no
  single set decides it), printed for ``thrifty.semantic.policy.DEFAULT_THRESHOLD``, with what
  that bar does on the hard pairs' ``dev`` part (``gen_hard_pairs.py --part dev``) beside it;
- the verified policy's prior (a grid of per-entry sigmoid curves, EM over pairs grouped by
  cached entry, both streams pooled), written to
  ``src/thrifty/semantic/assets/verified_prior_minilm_streams.json``; with ``--new-entry-bar``
  the default bar goes in as its ``new_entry_bar`` (the verified policy then serves an entry
  that no check has found wrong from that bar; without it, only when ``P(wrong) ≤ δ``: the
  shipped default, see RESULTS "Semantic decisions on hard pairs").

QQP was the earlier calibration set; its labels call a few per cent of near-identical pairs
different, which made both the bar and the prior too timid for real traffic (issue 13).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_data import OUT, ROOT
from _semantic_streams import banking77, nearest_pairs, support
from thrifty.semantic.pair_scorer import PairScorer
from thrifty.semantic.thresholds import SigmoidPrior, ThresholdCurve

ASSET = ROOT / "src" / "thrifty" / "semantic" / "assets" / "verified_prior_minilm_streams.json"
SEEDS = (1, 2, 3)
BOUND = 0.02


def hard_pairs_at(bar: float) -> str:
    """What ``bar`` with every guard and the scorer does on the hard pairs' dev part."""
    if not (OUT / "hard_pairs_dev.jsonl").is_file():
        return "hard pairs dev: not generated (run gen_hard_pairs.py --part dev)"
    from bench_semantic_hard import cosines, load, summarize
    from thrifty.semantic.guards import Guards

    pairs = load("dev")
    sims = cosines(pairs, "hard-dev")
    guards, scorer = Guards(), PairScorer.default()
    served = np.array(
        [
            s >= bar and guards.blocks(p["b"], p["a"]) is None and scorer.accepts(p["b"], p["a"], s)
            for p, s in zip(pairs, map(float, sims), strict=True)
        ]
    )
    r = summarize(pairs, served)
    return (
        f"hard pairs dev at {bar}: {r['wrong_share_without_near_intent']:.1%} of hits wrong on "
        f"the edited traps ({r['wrong_share_of_hits']:.1%} with near-intent pairs), "
        f"{r['same_answer_served']:.1%} of same-answer pairs served"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="write the shipped prior asset")
    parser.add_argument(
        "--new-entry-bar", action="store_true", help="ship the default bar as the new-entry bar"
    )
    args = parser.parse_args()
    scorer = PairScorer.default()
    streams = {"banking77 train": banking77("train"), "support fit half": support("fit")}
    pairs: list[tuple[str, float, bool]] = []
    bars = []
    for si, (name, stream) in enumerate(streams.items()):
        own = nearest_pairs([stream], SEEDS, guards=True, scorer=scorer)
        pairs += [(f"{si}/{key}", s, ok) for key, s, ok in own]
        curve = ThresholdCurve.measure([s for _, s, _ in own], [ok for _, _, ok in own])
        print(f"\n{name}: {len(own)} pairs (queries × orders with a candidate)")
        print("bar   hits/pairs  wrong")
        for i, bar in enumerate(curve.thresholds):
            if bar >= 0.80 and round(bar * 1000) % 10 == 0:
                print(f"{bar:.2f} {curve.hit_rate()[i]:8.1%} {curve.wrong_rate()[i]:7.2%}")
        for bound in (0.01, 0.02):
            print(f"lowest bar with wrong ≤ {bound:.0%} (95 % Wilson): {curve.best_under(bound)}")
        bars.append(curve.best_under(BOUND))
    bar = max(bars)
    print(f"\ndefault bar (≤ {BOUND:.0%} on every stream): {bar}")
    if math.isfinite(bar):
        print(hard_pairs_at(bar))

    groups: dict[str, tuple[list[float], list[bool]]] = {}
    for key, s, ok in pairs:
        g = groups.setdefault(key, ([], []))
        g[0].append(s)
        g[1].append(ok)
    sizes = np.array([len(g[0]) for g in groups.values()])
    print(f"entries {len(groups)}, with ≥2 observations {(sizes >= 2).sum()}, max {sizes.max()}")
    prior = SigmoidPrior.fit(
        groups.values(),
        source="banking77 train + support fit half (streams, 3 orders), all-MiniLM-L6-v2, "
        "nearest earlier query passed by the guards and the pair scorer, grouped by cached entry",
    )
    if args.new_entry_bar and math.isfinite(bar):  # see VerifiedThreshold's new_entry_bar
        prior.new_entry_bar = bar
    for s in (0.8, 0.85, 0.88, 0.9, 0.92, 0.95, 0.97, 1.0):
        print(f"new-entry P(wrong | s={s}) = {prior.wrong_probability(prior.weights, s):.4f}")
    if args.write:
        ASSET.write_text(json.dumps(prior.to_dict()) + "\n", encoding="utf-8")
        print(f"wrote {ASSET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
