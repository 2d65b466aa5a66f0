"""The measuring functions of benchmarks/bench_semantic_embedders.py on data small enough to check
by hand (the benchmark itself needs the candidates' wheels and the shared data)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_semantic_embedders as bench


def test_nearest_earlier_looks_only_backwards() -> None:
    vecs = np.eye(4, dtype=np.float32)
    vecs[3] = vecs[1]  # the 4th text repeats the 2nd
    labels = ["a", "b", "c", "b"]
    sims, same = bench.nearest_earlier(vecs, labels, seed=0)
    order = list(range(4))
    bench.random.Random(0).shuffle(order)
    assert sims[0] == -np.inf  # the first query has nothing before it
    for pos in range(1, 4):
        earlier = order[:pos]
        best = max(earlier, key=lambda j: float(vecs[order[pos]] @ vecs[j]))
        assert sims[pos] == pytest.approx(float(vecs[order[pos]] @ vecs[best]))
        assert same[pos] == (labels[best] == labels[order[pos]])


def test_nearest_earlier_blocks_agree_with_brute_force() -> None:
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(2_100, 8)).astype(np.float32)  # more than one 1,024-row block
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    labels = [str(i % 7) for i in range(len(vecs))]
    sims, same = bench.nearest_earlier(vecs, labels, seed=5)
    order = list(range(len(vecs)))
    bench.random.Random(5).shuffle(order)
    v = vecs[order]
    for pos in (1, 2, 1_023, 1_024, 1_025, 2_099):
        scores = v[:pos] @ v[pos]
        j = int(scores.argmax())
        assert sims[pos] == pytest.approx(float(scores[j]), abs=1e-6)
        assert same[pos] == (labels[order[j]] == labels[order[pos]])


def test_curve_rates_and_best_bar() -> None:
    curve = bench.Curve(
        sims=np.array([-np.inf, 0.99, 0.95, 0.95, 0.90, 0.85], dtype=np.float32),
        same=np.array([False, True, True, False, True, True]),
    )
    assert curve.at(0.95)[:2] == pytest.approx((3 / 6, 1 / 3))
    assert curve.at(0.99)[:2] == pytest.approx((1 / 6, 0.0))
    assert curve.best(0.01) == pytest.approx(0.99)  # 0.951-0.99 serve the same one right hit
    assert curve.best(0.50) == pytest.approx(0.85)  # 0.70-0.85: 5 hits, 1 wrong (20 %)
    assert curve.best(0.10) == pytest.approx(0.99)


def test_auc_matches_scikit_learn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=500)
    scores = np.round(rng.normal(size=500) + labels, 1)  # rounded: many ties
    assert bench.auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
