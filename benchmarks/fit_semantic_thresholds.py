"""Calibrate the semantic thresholds on the QQP ``dev`` split (never on ``test``).

    python benchmarks/fit_semantic_thresholds.py            # prints the dev curve
    python benchmarks/fit_semantic_thresholds.py --write    # also writes the shipped prior

Writes ``src/thrifty/semantic/assets/verified_prior_minilm_qqp_dev.json``: the weights of the
verified policy's per-entry prior (a grid of sigmoid curves, fitted by EM on dev pairs that the
guards let through, grouped by cached question). Only these aggregate weights are shipped, no
QQP text. Also prints the fixed bars chosen on dev (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_data import ROOT, load_qqp, orient_pairs, pair_similarities
from thrifty.semantic.guards import Guards
from thrifty.semantic.thresholds import SigmoidPrior, ThresholdCurve

ASSET = ROOT / "src" / "thrifty" / "semantic" / "assets" / "verified_prior_minilm_qqp_dev.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="write the shipped prior asset")
    args = parser.parse_args()
    rows = load_qqp("dev")
    sims = pair_similarities(rows, "qqp-dev")
    right = np.array([r["label"] == 1 for r in rows])
    oriented = orient_pairs(rows)
    guards = Guards()
    passed = np.array([guards.allows(asked, cached) for cached, asked in oriented])
    print(f"dev pairs {len(rows)}, duplicates {right.mean():.1%}, guards pass {passed.mean():.1%}")
    plain = ThresholdCurve.measure(sims, right)
    guarded = ThresholdCurve.measure(np.where(passed, sims, -1.0), right)
    print("bar   hit%  wrong%  | guarded hit%  wrong%")
    for i, bar in enumerate(plain.thresholds):
        if bar >= 0.8 and round(bar * 1000) % 10 == 0:
            print(
                f"{bar:.2f} {plain.hit_rate()[i]:6.1%} {plain.wrong_rate()[i]:6.1%}  | "
                f"{guarded.hit_rate()[i]:6.1%} {guarded.wrong_rate()[i]:6.1%}"
            )
    for bound in (0.05, 0.10, 0.15, 0.20):
        print(
            f"lowest bar with wrong ≤ {bound:.0%} (95% Wilson): plain {plain.best_under(bound)}"
            f", guarded {guarded.best_under(bound)}"
        )
    print(f"best F0.5: plain {plain.best_f_beta(0.5)}, guarded {guarded.best_f_beta(0.5)}")

    groups: dict[str, tuple[list[float], list[bool]]] = {}
    for (cached, _asked), s, ok, keep in zip(oriented, sims, right, passed, strict=True):
        if keep:
            g = groups.setdefault(cached, ([], []))
            g[0].append(float(s))
            g[1].append(bool(ok))
    sizes = np.array([len(g[0]) for g in groups.values()])
    print(f"entries {len(groups)}, with ≥2 observations {(sizes >= 2).sum()}, max {sizes.max()}")
    prior = SigmoidPrior.fit(
        groups.values(),
        source="QQP dev split, all-MiniLM-L6-v2, guard-passed pairs grouped by cached question",
    )
    for s in (0.85, 0.9, 0.95, 0.97, 0.99, 1.0):
        print(f"new-entry P(wrong | s={s}) = {prior.wrong_probability(prior.weights, s):.3f}")
    if args.write:
        ASSET.write_text(json.dumps(prior.to_dict()) + "\n", encoding="utf-8")
        print(f"wrote {ASSET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
