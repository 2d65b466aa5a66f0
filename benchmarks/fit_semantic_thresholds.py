"""Calibrate the semantic thresholds on query streams (never on ``test`` rows, never on QQP).

    python benchmarks/fit_semantic_thresholds.py            # prints the fit
    python benchmarks/fit_semantic_thresholds.py --write    # also writes the shipped prior

Fits on banking77 ``train`` and the support set's ``fit`` half (by a hash of the text, see
``_semantic_streams.py``), each replayed in three seeded random orders with every query cached:
each query meets its nearest earlier query that the guards pass, as a cache does, and the pair
is right when the two share an intent. From those pairs:

- the fixed default bar: the lowest bar whose wrong-hit rate is ≤ 1 % with 95 % confidence
  (Wilson upper bound), printed for ``thrifty.semantic.policy.DEFAULT_THRESHOLD``;
- the verified policy's prior (a grid of per-entry sigmoid curves, EM over pairs grouped by
  cached entry), written to ``src/thrifty/semantic/assets/verified_prior_minilm_streams.json``.

QQP was the earlier calibration set; its labels call a few per cent of near-identical pairs
different, which made both the bar and the prior too timid for real traffic (issue 13).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_data import ROOT
from _semantic_streams import banking77, nearest_pairs, support
from thrifty.semantic.thresholds import SigmoidPrior, ThresholdCurve

ASSET = ROOT / "src" / "thrifty" / "semantic" / "assets" / "verified_prior_minilm_streams.json"
SEEDS = (1, 2, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="write the shipped prior asset")
    args = parser.parse_args()
    streams = [banking77("train"), support("fit")]
    pairs = nearest_pairs(streams, SEEDS, guards=True)
    sims = np.array([s for _, s, _ in pairs])
    right = np.array([r for _, _, r in pairs])
    print(f"pairs {len(pairs)} (queries × orders), same intent {right.mean():.1%}")
    curve = ThresholdCurve.measure(sims, right)
    print("bar   pairs-served  wrong")
    for i, bar in enumerate(curve.thresholds):
        if bar >= 0.75 and round(bar * 1000) % 20 == 0:
            print(f"{bar:.2f} {curve.hit_rate()[i]:8.1%} {curve.wrong_rate()[i]:7.2%}")
    for bound in (0.01, 0.02):
        print(f"lowest bar with wrong ≤ {bound:.0%} (95 % Wilson): {curve.best_under(bound)}")

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
        "guard-passed nearest earlier query grouped by cached entry",
    )
    for s in (0.8, 0.85, 0.88, 0.9, 0.92, 0.95, 0.97, 1.0):
        print(f"new-entry P(wrong | s={s}) = {prior.wrong_probability(prior.weights, s):.4f}")
    if args.write:
        ASSET.write_text(json.dumps(prior.to_dict()) + "\n", encoding="utf-8")
        print(f"wrote {ASSET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
