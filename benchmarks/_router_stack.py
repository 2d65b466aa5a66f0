"""``bench_router.py --task mmlu --stack``: the stacked MMLU router's dev CV (the research
copy; the product head is ``thrifty.routing.stacked``, ``--kind stack``, in ``_router_outcomes``).

Why: the ``grouped`` head (subject learned from the prompt) and the per-subject table saturate at
42-43 % GPT-4 calls for 95 % of GPT-4 on MMLU test; the goal is 40 %. Two things the subject does
not carry: how hard *this* question is (its neighbours' outcomes, its arithmetic, negations,
"Statement 1 | Statement 2" items, passages, option lengths), and how much to trust the subject
prior for it. The stack:

1. the grouped head's joint-outcome probabilities and its subject prior (8 numbers), computed out
   of fold on the training rows (3 folds) and by the head fitted on all of them for new rows;
2. kNN difficulty: similarity-weighted Mixtral, GPT-4, gain and only-GPT-4 rates of the 30
   nearest training prompts (leave-one-out on the training rows), the top and mean similarity;
3. :func:`difficulty_features` of the prompt (26 numbers, regular expressions only);

a gradient-boosted classifier (scikit-learn ``HistGradientBoostingClassifier``) of the four joint
outcomes over them, whose utility ``P(only GPT-4 right) - P(only Mixtral right)`` (equal to
``P(GPT-4 right) - P(Mixtral right)``) ranks prompts; ``stack`` averages its rank with the grouped
head's. Chosen by 3-fold CV on dev (never test), then fitted on all of dev and scored on test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from _router_outcomes import GRID, per_subject_score, quality_curve, share_for
from _routing_data import embeddings, load_rows
from thrifty.routing.difficulty import difficulty_features
from thrifty.routing.router import router_inputs, train_router
from thrifty.routing.stacked import HGB, knn_stats  # the head's own settings and statistics


def stack_scores(
    x: np.ndarray, texts: list[str], groups: list[str], cheap: np.ndarray, strong: np.ndarray,
    fit: np.ndarray, score: np.ndarray,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Router scores of rows ``score`` (high: Mixtral), learned from rows ``fit`` only."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    def grouped(rows: np.ndarray) -> Any:
        return train_router(
            x[rows], cheap[rows], strong[rows], texts=[texts[j] for j in rows],
            groups=[groups[j] for j in rows], kind="grouped", inputs="embedding+prompt",
            label="no_gain",
        )  # fmt: skip

    def parts(router: Any, rows: np.ndarray) -> np.ndarray:
        z = router_inputs(x[rows], [texts[j] for j in rows], "embedding+prompt")
        return np.hstack([router.scorer.joint(z), router.scorer.prior(z)])

    g_fit = np.zeros((len(fit), 8))
    inner = np.random.default_rng(2).permutation(len(fit)) % 3
    for f in range(3):
        g_fit[inner == f] = parts(grouped(fit[inner != f]), fit[inner == f])
    g_score = parts(grouped(fit), score)
    feats = np.array([difficulty_features(t) for t in texts], dtype=np.float32)
    k_fit = knn_stats(x[fit], x[fit], cheap[fit], strong[fit], same=True)
    k_score = knn_stats(x[score], x[fit], cheap[fit], strong[fit], same=False)
    joint = (2 * strong[fit] + cheap[fit]).astype(int)
    hgb = HistGradientBoostingClassifier(**HGB).fit(np.hstack([g_fit, k_fit, feats[fit]]), joint)
    p = hgb.predict_proba(np.hstack([g_score, k_score, feats[score]]))
    out = {"grouped": 1 - (g_score[:, 2] - g_score[:, 1]), "boosted": 1 - (p[:, 2] - p[:, 1])}
    rank = {k: np.argsort(np.argsort(v)) / len(v) for k, v in out.items()}
    out["stack"] = rank["grouped"] + rank["boosted"]
    return out


def run(embedder: str = "minilm", cv_folds: int = 3) -> dict[str, Any]:
    """Dev CV shares (when ``cv_folds`` > 1) and test shares of the stack's parts on MMLU."""
    rows = load_rows("mmlu")
    x = embeddings("mmlu", rows, embedder)
    texts, groups = [r["prompt"] for r in rows], [r["subject"] for r in rows]
    cheap = np.array([float(r["mixtral_correct"]) for r in rows])
    strong = np.array([float(r["gpt4_correct"]) for r in rows])
    dev = np.array([i for i, r in enumerate(rows) if r["split"] == "dev"])
    test = np.array([i for i, r in enumerate(rows) if r["split"] == "test"])
    out: dict[str, Any] = {"embedder": embedder, "test": {}, "dev_cv": {}}
    if cv_folds > 1:  # the choice: pooled out-of-fold ranks on dev, as dev_cv in _router_outcomes
        part = np.random.default_rng(0).permutation(len(dev)) % cv_folds
        oof: dict[str, np.ndarray] = {}
        for f in range(cv_folds):
            fit, held = dev[part != f], dev[part == f]
            scores = stack_scores(x, texts, groups, cheap, strong, fit, held)
            scores["per-subject"] = per_subject_score(rows, list(fit), list(held))
            for name, s in scores.items():
                oof.setdefault(name, np.zeros(len(dev)))[part == f] = (
                    np.argsort(np.argsort(s)) + 0.5
                ) / len(held)
        for name, s in oof.items():
            curve = quality_curve(s, cheap[dev], strong[dev])
            out["dev_cv"][name] = share_for(curve, 0.95 * float(strong[dev].mean()))
    scores = stack_scores(x, texts, groups, cheap, strong, dev, test)
    scores["per-subject"] = per_subject_score(rows, list(dev), list(test))
    for name, s in scores.items():
        curve = quality_curve(s, cheap[test], strong[test])
        out["test"][name] = {
            "share_at_95": share_for(curve, 0.95 * float(strong[test].mean())),
            "accuracy_at_40": float(curve[int(np.searchsorted(GRID, 0.4))]) / strong[test].mean(),
        }
    return out
