"""Fit the pair scorer (``semantic/pair_scorer.py``) and write ``assets/pair_scorer.json``.

    python benchmarks/gen_hard_pairs.py --part dev && python benchmarks/train_pair_scorer.py

Training pairs, dev/train parts only: the generated hard pairs of the ``dev`` part (banking77
train and the support set's first half, edited by each trap, and their real nearest neighbours),
each query's three nearest neighbours at cosine ≥ 0.75 in those two sets (label: same intent),
and 4,000 QQP ``dev`` pairs (label: duplicate). Pairs that a guard blocks are left out: the
matcher only asks the scorer about pairs the guards let through. A scikit-learn logistic
regression on standardized features, each group weighing the same; the probability bar is the
highest at which every group, over its validation pairs at cosine ≥ 0.85 (where the matcher
asks), keeps ``--keep`` of its right pairs (validation: a fixed 30 % of the pairs by hash); the
final fit uses every pair.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_data import OUT, ROOT, embed_cached, load_qqp, qqp_vectors
from bench_semantic_hard import cosines, load
from gen_hard_pairs import sources
from thrifty.semantic.guards import Guards
from thrifty.semantic.pair_scorer import FEATURES, features

ASSET = ROOT / "src/thrifty/semantic/assets/pair_scorer.json"


def neighbour_rows() -> list[tuple[str, str, int, float]]:
    rows = sources("dev")
    out: list[tuple[str, str, int, float]] = []
    for source in ("banking77", "support"):
        texts = sorted({t for t, _, s in rows if s == source})
        intent = {t: i for t, i, s in rows if s == source}
        vectors = embed_cached(f"{source}-dev-hard", texts)
        for start in range(0, len(texts), 1024):
            sims = vectors[start : start + 1024] @ vectors.T
            for row, i in enumerate(range(start, min(start + 1024, len(texts)))):
                sims[row, i] = -1.0
                for j in np.argsort(-sims[row])[:3]:
                    if sims[row, j] >= 0.75:
                        same = int(intent[texts[i]] == intent[texts[int(j)]])
                        out.append((texts[i], texts[int(j)], same, float(sims[row, j])))
    return out


def training_rows() -> tuple[list[tuple[str, str, int, float]], list[str]]:
    """The pairs ``(query, cached, label, cosine)`` the guards let through, and each one's group
    (``hard``, ``neighbours``, ``qqp``)."""
    hard = load("dev")
    sims = cosines(hard, "hard-dev")
    rows = [(p["b"], p["a"], int(p["label"]), float(s)) for p, s in zip(hard, sims, strict=True)]
    groups = ["hard"] * len(rows)
    neighbours = neighbour_rows()
    rows += neighbours
    groups += ["neighbours"] * len(neighbours)
    qqp = load_qqp("dev", 4000)
    a, b = qqp_vectors(qqp, "qqp-dev-4k")
    qsims = np.einsum("ij,ij->i", a, b)
    rows += [(r["b"], r["a"], int(r["label"]), float(s)) for r, s in zip(qqp, qsims, strict=True)]
    groups += ["qqp"] * len(qqp)
    guards = Guards()
    kept = [i for i, r in enumerate(rows) if guards.blocks(r[0], r[1]) is None]
    return [rows[i] for i in kept], [groups[i] for i in kept]


def choose_threshold(
    p: np.ndarray, y: np.ndarray, groups: np.ndarray, asked: np.ndarray, keep: float
) -> float:
    """The highest probability bar at which every group keeps ``keep`` of its right pairs among
    those the matcher would ask about; prints precision and recall per group as it goes."""
    threshold = 0.5
    for t in np.round(np.arange(0.50, 0.96, 0.01), 2):
        recalls, cells = [], []
        for name in sorted(set(groups)):
            m = asked & (groups == name)
            served = m & (p >= t)
            recall = (served & (y == 1)).sum() / max(1, (m & (y == 1)).sum())
            recalls.append(recall)
            cells.append(f"{name} P {y[m].mean():.3f}->{y[served].mean():.3f} R {recall:.2f}")
        if min(recalls) < keep:
            break
        threshold = float(t)
        if round(t * 100) % 5 == 0:
            print(f"  p>={t:.2f}: " + "; ".join(cells))
    print(f"threshold p>={threshold} (every group keeps >= {keep:.0%} of its right pairs)")
    return threshold


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=float, default=0.85)
    args = parser.parse_args()
    rows, group_of = training_rows()
    x = np.array([features(q, c, s) for q, c, _, s in rows])
    y = np.array([label for _, _, label, _ in rows])
    groups = np.array(group_of)
    weight = np.ones(len(y))
    for name in set(group_of):  # each group weighs the same: the neighbours are 90 % of rows
        weight[groups == name] = len(y) / (3 * (groups == name).sum())
    held = np.array([hashlib.sha256((q + c).encode()).digest()[0] < 77 for q, c, _, _ in rows])
    scaler = StandardScaler().fit(x[~held])
    model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit(scaler.transform(x[~held]), y[~held], sample_weight=weight[~held])
    p = model.predict_proba(scaler.transform(x[held]))[:, 1]
    threshold = choose_threshold(p, y[held], groups[held], x[held, 0] >= 0.85, args.keep)
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(
        scaler.transform(x), y, sample_weight=weight
    )
    weights = {
        "model": "all-MiniLM-L6-v2",
        "features": list(FEATURES),
        "mean": [round(float(v), 6) for v in scaler.mean_],
        "scale": [round(float(v), 6) for v in scaler.scale_],
        "coef": [round(float(v), 6) for v in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 6),
        "threshold": threshold,
        "trained_on": "banking77 train, support first half, QQP dev (4,000), generated hard pairs",
    }
    ASSET.write_text(json.dumps(weights, indent=1) + "\n", encoding="utf-8")
    for name, coef in zip(FEATURES, weights["coef"], strict=True):
        print(f"  {name:<16}{coef:+.3f}")
    print(f"-> {ASSET}")
    (OUT / "pair_scorer_fit.json").write_text(json.dumps({"threshold": threshold}))


if __name__ == "__main__":
    main()
