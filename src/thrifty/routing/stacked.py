"""The ``stack`` router head: the ``grouped`` head, kNN difficulty and prompt difficulty features,
combined by gradient-boosted trees, ranked together with the grouped head.

Why: on MMLU the grouped head and the per-subject table saturate at 42-43 % GPT-4 calls for 95 %
of GPT-4's accuracy; what the subject does not carry is how hard *this* question is. The stack
reads (``inputs="embedding+prompt+difficulty"``):

1. the grouped head's joint-outcome probabilities and group prior (8 numbers), out of fold on the
   training rows (3 folds), from the head fitted on all of them for new prompts;
2. kNN difficulty: similarity-weighted cheap, strong, gain and only-strong rates of the 30
   nearest training prompts (leave-one-out in training), top and mean similarity; the training
   vectors (float16) and outcomes ship in the router file;
3. the 26 :mod:`~thrifty.routing.difficulty` features;

a ``HistGradientBoostingClassifier`` of the four joint outcomes over them (scikit-learn at
training only; served by :mod:`~thrifty.routing.trees` from plain arrays). Its gain ``P(only
strong) - P(only cheap)`` and the grouped head's are each turned into a rank (their empirical
CDF on the held-out rows, stored) and averaged: ``p`` is high where both say the strong model
gains little.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from thrifty.routing.difficulty import N_DIFFICULTY
from thrifty.routing.grouped import GroupedScorer, joint_onehot
from thrifty.routing.trees import TREE_ARRAYS, export_hgb, prepare, tree_proba

#: Neighbours read by the kNN difficulty part.
NEIGHBOURS = 30
#: Folds of the out-of-fold grouped parts the trees are fitted on.
FOLDS = 3
#: The boosted trees' settings (chosen by MMLU dev 3-fold CV, benchmarks/RESULTS.md).
HGB = {
    "max_iter": 200,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "early_stopping": True,
    "random_state": 0,
}
_TREE_KEYS = (*TREE_ARRAYS, "baseline", "depth")


def knn_stats(
    xq: np.ndarray, xr: np.ndarray, cheap: np.ndarray, strong: np.ndarray, *, same: bool
) -> np.ndarray:
    """``(n, 6)`` outcome rates of the nearest reference prompts (``same``: the rows themselves,
    each left out of its own neighbours), top and mean similarity."""
    sims = np.asarray(xq, np.float32) @ np.asarray(xr, np.float32).T
    if same:
        np.fill_diagonal(sims, -1.0)
    k = min(NEIGHBOURS, xr.shape[0] - 1)
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    s = np.take_along_axis(sims, top, 1).astype(np.float64)
    w = np.exp((s - s.max(1, keepdims=True)) * 20)
    w /= w.sum(1, keepdims=True)
    c, g = cheap[top], strong[top]
    return np.column_stack(
        [
            (w * c).sum(1),
            (w * g).sum(1),
            (w * (g - c)).sum(1),
            (w * ((g == 1) & (c == 0))).sum(1),
            s.max(1),
            s.mean(1),
        ]
    )


def _rank(sorted_ref: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Empirical CDF of ``values`` on the stored held-out scores."""
    return (np.searchsorted(sorted_ref, values, side="left") + 0.5) / (len(sorted_ref) + 1)


def _gain_score(joint: np.ndarray) -> np.ndarray:
    return 1.0 - (joint[:, 2] - joint[:, 1])


@dataclass
class StackedScorer:
    """See the module docstring. ``x`` columns: embedding, the 12 prompt features, the 26
    difficulty features."""

    kind: ClassVar[str] = "stack"
    needs_groups: ClassVar[bool] = True
    grouped: GroupedScorer
    ref_vectors: np.ndarray
    ref_cheap: np.ndarray
    ref_strong: np.ndarray
    trees: dict[str, np.ndarray]
    ref_grouped: np.ndarray
    ref_boosted: np.ndarray
    _prepared: tuple[np.ndarray, ...] | None = field(default=None, init=False, repr=False)

    @property
    def dim(self) -> int:
        return self.grouped.dim + N_DIFFICULTY

    @property
    def embed_dim(self) -> int:
        return int(self.ref_vectors.shape[1])

    def _parts(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The grouped head's 8 numbers and the trees' joint probabilities."""
        g = _grouped_parts(self.grouped, x[:, : self.grouped.dim])
        k = knn_stats(
            x[:, : self.embed_dim], self.ref_vectors, self.ref_cheap, self.ref_strong, same=False
        )
        if self._prepared is None:
            self._prepared = prepare(self.trees)
        p = tree_proba(self.trees, np.hstack([g, k, x[:, self.grouped.dim :]]), self._prepared)
        return g, p

    def score(self, x: np.ndarray) -> np.ndarray:
        g, p = self._parts(np.atleast_2d(x))
        return (
            _rank(self.ref_grouped, _gain_score(g)) + _rank(self.ref_boosted, _gain_score(p))
        ) / 2.0

    @classmethod
    def fit(
        cls, x: np.ndarray, y: np.ndarray, x_held: np.ndarray, y_held: np.ndarray
    ) -> tuple[StackedScorer, dict[str, Any]]:
        from sklearn.ensemble import HistGradientBoostingClassifier

        d = x.shape[1] - N_DIFFICULTY
        e = d - _prompt_width()
        g_fit = np.zeros((len(x), 8))
        inner = np.random.default_rng(2).permutation(len(x)) % FOLDS
        for f in range(FOLDS):
            head, _ = GroupedScorer.fit(x[inner != f, :d], y[inner != f], x_held[:, :d], y_held)
            g_fit[inner == f] = _grouped_parts(head, x[inner == f, :d])
        grouped, info = GroupedScorer.fit(x[:, :d], y, x_held[:, :d], y_held)
        cheap, strong = y[:, 0].astype(np.float32), y[:, 1].astype(np.float32)
        # float16 in the file, float32 in memory: numpy has no fast float16 matrix product.
        vectors = x[:, :e].astype(np.float16).astype(np.float32)
        k_fit = knn_stats(vectors, vectors, cheap, strong, same=True)
        joint = joint_onehot(cheap, strong).argmax(1)
        model = HistGradientBoostingClassifier(**HGB)
        model.fit(np.hstack([g_fit, k_fit, x[:, d:]]), joint)
        trees = export_hgb(model)
        scorer = cls(
            grouped, vectors, cheap, strong, trees, np.zeros(1), np.zeros(1)
        )  # fmt: skip
        g_held, p_held = scorer._parts(x_held)
        scorer.ref_grouped = np.sort(_gain_score(g_held))
        scorer.ref_boosted = np.sort(_gain_score(p_held))
        return scorer, {
            **{f"grouped_{k}": v for k, v in info.items()},
            "trees": int(trees["feature"].shape[0]),
            "tree_depth": int(trees["depth"][0]),
            "neighbours": NEIGHBOURS,
        }

    def arrays(self) -> dict[str, Any]:
        return {
            **{f"grouped.{k}": v for k, v in self.grouped.arrays().items()},
            **{f"trees.{k}": v for k, v in self.trees.items()},
            "ref_vectors": self.ref_vectors.astype(np.float16),
            "ref_cheap": self.ref_cheap,
            "ref_strong": self.ref_strong,
            "ref_grouped": self.ref_grouped,
            "ref_boosted": self.ref_boosted,
        }

    @classmethod
    def from_arrays(cls, data: dict[str, Any]) -> StackedScorer:
        grouped = GroupedScorer.from_arrays(
            {k[len("grouped.") :]: v for k, v in data.items() if k.startswith("grouped.")}
        )
        trees = {k: np.asarray(data[f"trees.{k}"]) for k in _TREE_KEYS}
        ints = ("feature", "left", "right", "klass", "depth")
        for k in ints:
            trees[k] = trees[k].astype(np.int64)
        for k in ("leaf", "missing_left"):
            trees[k] = trees[k].astype(np.bool_)
        return cls(
            grouped,
            np.asarray(data["ref_vectors"], dtype=np.float32),
            np.asarray(data["ref_cheap"], dtype=np.float32),
            np.asarray(data["ref_strong"], dtype=np.float32),
            trees,
            np.asarray(data["ref_grouped"], dtype=np.float64),
            np.asarray(data["ref_boosted"], dtype=np.float64),
        )


def _grouped_parts(head: GroupedScorer, x: np.ndarray) -> np.ndarray:
    return np.hstack([head.joint(x), head.prior(x)]).astype(np.float64)


def _prompt_width() -> int:
    from thrifty.routing.prompt_features import FEATURES

    return len(FEATURES)
