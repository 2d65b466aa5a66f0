"""The ``grouped`` router head: what is known of a prompt's *group* (MMLU's subject, a task type),
stacked with what its own text says, ranking prompts by the strong model's expected gain.

Why: on MMLU a per-subject table (how far Mixtral trails GPT-4 in each subject, on dev) routes as
well as every head learned from the embedding (43 % GPT-4 calls at 95 % of GPT-4, RESULTS.md):
one prompt's right/wrong outcome is a very noisy label, a subject pools hundreds of them. But the
subject is not in the prompt a gateway receives. This head learns it:

1. a softmax classifier ``q(x)`` of the group from the prompt's inputs (the subject is a clean,
   57-way label: far more to learn from than one coin-flip outcome per prompt). When the outcomes
   name no group, k-means clusters of the embeddings stand in for groups;
2. a table of the four joint outcomes per group (both right, only cheap, only strong, both
   wrong), smoothed toward the overall rates; ``q(x) @ table`` is the group prior;
3. a softmax over the four joint outcomes from the inputs plus the prior's log-odds (stacking:
   the prior is computed out of fold on the training rows, so the head learns how far to trust
   it), which ranks by the expected gain ``P(only strong right) - P(only cheap right)``.

``p = (1 - gain) / 2``: one half where the strong model is expected to gain nothing, lower the
more it gains; a prompt both models miss (or both get) stays cheap, and one that only the cheap
model gets counts *for* the cheap model, which a ``no_gain`` label cannot say. Plain numpy;
weights in a router's ``.npz`` or JSON as arrays, no pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from thrifty.routing.heads import _train

#: Joint outcomes, in column order: index ``2 * strong_ok + cheap_ok``.
JOINT = ("both_wrong", "only_cheap", "only_strong", "both_right")
#: Pseudo-count pulling each group's joint rates toward the overall ones.
GROUP_PRIOR = 20.0
#: Groups made by k-means when the outcomes name none.
CLUSTERS = 32
#: L2 penalties tried for the final joint-outcome softmax; the best held-out loss wins.
L2_GRID = (1e-3,)
#: Folds for the out-of-fold group prior the final softmax is fitted on.
FOLDS = 3


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _cross_entropy(prob: np.ndarray, target: np.ndarray) -> float:
    return float(-(target * np.log(np.clip(prob, 1e-6, 1.0))).sum(1).mean())


def fit_softmax(
    x: np.ndarray,
    target: np.ndarray,
    x_held: np.ndarray,
    target_held: np.ndarray,
    *,
    l2: float,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Softmax regression (``target``: one-hot or soft rows) by minibatch Adam with early stopping
    on the held-out rows. Returns ``(weights (k, d), bias (k,), held-out cross-entropy)``."""
    x32, t32 = x.astype(np.float32), target.astype(np.float32)
    k, d = target.shape[1], x.shape[1]
    w = np.zeros((k, d), np.float32)
    b = np.log(np.clip(target.mean(0), 1e-4, None)).astype(np.float32)

    def loss_grad(rows: np.ndarray) -> list[np.ndarray]:
        xb = x32[rows]
        err = (softmax(xb @ w.T + b) - t32[rows]) / len(rows)
        return [err.T @ xb + l2 * w, err.sum(0)]

    def held() -> float:
        return _cross_entropy(softmax(x_held.astype(np.float32) @ w.T + b), target_held)

    loss = _train([w, b], loss_grad, held, len(x), seed=seed, lr=1e-2, epochs=40, batch=256)
    return w, b, loss


def kmeans(x: np.ndarray, k: int, iterations: int = 25, seed: int = 0) -> np.ndarray:
    """Cluster index of each row (cosine k-means on unit rows); stands in for named groups."""
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    centres = x[rng.choice(len(x), k, replace=False)].astype(np.float32)
    assign = np.zeros(len(x), dtype=np.int64)
    for _ in range(iterations):
        assign = np.argmax(x @ centres.T, axis=1)
        for c in range(k):
            members = x[assign == c]
            if len(members):
                mean = members.mean(0)
                centres[c] = mean / max(float(np.linalg.norm(mean)), 1e-9)
    return assign


def joint_onehot(cheap: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """``(n, 4)`` one-hot of :data:`JOINT`."""
    index = (2 * np.asarray(strong) + np.asarray(cheap)).astype(np.int64)
    return np.eye(4, dtype=np.float32)[index]


def group_table(groups: np.ndarray, joint: np.ndarray, n_groups: int) -> np.ndarray:
    """``(n_groups, 4)`` joint-outcome rates per group, smoothed by :data:`GROUP_PRIOR`."""
    overall = joint.mean(0)
    table = np.empty((n_groups, 4))
    for g in range(n_groups):
        rows = joint[groups == g]
        table[g] = (rows.sum(0) + GROUP_PRIOR * overall) / (len(rows) + GROUP_PRIOR)
    return table


def _prior_features(q: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The group prior as log-rates of the four joint outcomes (what the final softmax reads)."""
    return np.log(np.clip(q @ table, 1e-4, 1.0)).astype(np.float32)


@dataclass
class GroupedScorer:
    """``p = (1 - gain) / 2``, ``gain = P(only strong) - P(only cheap)`` from a softmax over
    the inputs and the group prior ``log(q(x) @ table)``; see the module docstring."""

    kind: ClassVar[str] = "grouped"
    #: Fitted on both models' outcomes and the groups: ``y`` is ``(n, 3)``, columns cheap_ok,
    #: strong_ok and the group index (-1 everywhere: no groups given, k-means makes them).
    needs_groups: ClassVar[bool] = True
    group_weights: np.ndarray
    group_bias: np.ndarray
    table: np.ndarray
    joint_weights: np.ndarray
    joint_bias: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.group_weights.shape[1])

    def prior(self, x: np.ndarray) -> np.ndarray:
        q = softmax(x.astype(np.float32) @ self.group_weights.T + self.group_bias)
        return _prior_features(q, self.table)

    def joint(self, x: np.ndarray) -> np.ndarray:
        """``(n, 4)``: the chance of each joint outcome (:data:`JOINT`)."""
        z = np.hstack([x.astype(np.float32), self.prior(x)])
        return softmax(z @ self.joint_weights.T + self.joint_bias)

    def score(self, x: np.ndarray) -> np.ndarray:
        p = self.joint(x).astype(np.float64)
        return (1.0 - (p[:, 2] - p[:, 1])) / 2.0

    @staticmethod
    def _groups(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int, str]:
        given = y[:, 2].astype(np.int64)
        if (given >= 0).all():
            return given, int(given.max()) + 1, "given"
        return kmeans(x, CLUSTERS), min(CLUSTERS, len(x)), f"k-means ({CLUSTERS})"

    @classmethod
    def fit(
        cls, x: np.ndarray, y: np.ndarray, x_held: np.ndarray, y_held: np.ndarray
    ) -> tuple[GroupedScorer, dict[str, Any]]:
        both = np.vstack([x, x_held])
        groups_all, n_groups, source = cls._groups(both, np.vstack([y, y_held]))
        groups, groups_held = groups_all[: len(x)], groups_all[len(x) :]
        eye = np.eye(n_groups, dtype=np.float32)
        gw, gb, group_loss = fit_softmax(x, eye[groups], x_held, eye[groups_held], l2=1e-4)
        joint = joint_onehot(y[:, 0], y[:, 1])
        joint_held = joint_onehot(y_held[:, 0], y_held[:, 1])
        table = group_table(groups, joint, n_groups)
        # The prior of each training row comes from a classifier and table that never saw it, so
        # the final softmax learns how much the prior is worth on prompts it has not seen.
        prior = np.empty((len(x), 4), np.float32)
        folds = np.random.default_rng(1).permutation(len(x)) % FOLDS
        for f in range(FOLDS):
            inside, out = folds != f, folds == f
            w, b, _ = fit_softmax(
                x[inside], eye[groups[inside]], x_held, eye[groups_held], l2=1e-4, seed=f
            )
            q = softmax(x[out].astype(np.float32) @ w.T + b)
            prior[out] = _prior_features(q, group_table(groups[inside], joint[inside], n_groups))
        scorer = cls(gw, gb, table, np.zeros((4, 1), np.float32), np.zeros(4, np.float32))
        z = np.hstack([x, prior])
        z_held = np.hstack([x_held, scorer.prior(x_held)])
        fits = [fit_softmax(z, joint, z_held, joint_held, l2=l2) for l2 in L2_GRID]
        best = int(np.argmin([loss for *_, loss in fits]))
        scorer.joint_weights, scorer.joint_bias = fits[best][0], fits[best][1]
        return scorer, {
            "groups": source,
            "n_groups": n_groups,
            "group_heldout_log_loss": round(group_loss, 5),
            "l2": L2_GRID[best],
            "heldout_log_loss": round(fits[best][2], 5),
        }

    def arrays(self) -> dict[str, Any]:
        return {
            "group_weights": self.group_weights,
            "group_bias": self.group_bias,
            "table": self.table,
            "joint_weights": self.joint_weights,
            "joint_bias": self.joint_bias,
        }

    @classmethod
    def from_arrays(cls, data: dict[str, Any]) -> GroupedScorer:
        return cls(
            *(
                np.asarray(data[k], dtype=np.float32)
                for k in ("group_weights", "group_bias", "table", "joint_weights", "joint_bias")
            )
        )
