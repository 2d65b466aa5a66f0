"""What a learned router computes: ``p``, the chance the cheap model answers well, from an
embedding. Two kinds here (``heads.py`` has two more; ``kinds.SCORERS`` lists them all):

- ``logistic``: L2-penalised logistic regression (384 weights and a bias; a tiny file);
- ``knn``: the similarity-weighted share of good cheap answers among the ``k`` nearest recorded
  prompts (RouteLLM's similarity-weighted idea). It follows where a cheap model fails far better
  than a linear boundary when failures cluster by topic (banking77: AUC 0.81 against 0.71,
  benchmarks/RESULTS.md), at the price of keeping the outcomes' vectors (float16, ~0.8 KB each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

#: L2 penalties tried for ``logistic``; the best held-out log loss wins.
L2_GRID = (0.01, 0.1, 1.0, 10.0)
#: Neighbour counts tried for ``knn``; the best held-out log loss wins.
K_GRID = (5, 10, 20, 40)
#: Query batches up to this size are scored without BLAS (see ``NeighbourScorer.score``).
SMALL_BATCH = 8


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 30
) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression by Newton's method (exact, a few iterations).

    Returns:
        (weights, bias); the bias is not penalised.
    """
    n, d = x.shape
    xb = np.hstack([x.astype(np.float64), np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = sigmoid(xb @ w)
        grad = xb.T @ (p - y) + penalty * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w[:-1], float(w[-1])


@dataclass
class LogisticScorer:
    """``p = sigmoid(w·x + b)``."""

    kind: ClassVar[str] = "logistic"
    weights: np.ndarray
    bias: float

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    def score(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(x.astype(np.float64) @ self.weights + self.bias)

    @classmethod
    def fit(
        cls, x: np.ndarray, y: np.ndarray, x_held: np.ndarray, y_held: np.ndarray
    ) -> tuple[LogisticScorer, dict[str, Any]]:
        fits = [cls(*fit_logistic(x, y, l2)) for l2 in L2_GRID]
        losses = [log_loss(f.score(x_held), y_held) for f in fits]
        best = int(np.argmin(losses))
        return fits[best], {"l2": L2_GRID[best], "heldout_log_loss": round(losses[best], 5)}

    def arrays(self) -> dict[str, Any]:
        return {"weights": self.weights.astype(np.float64), "bias": self.bias}

    @classmethod
    def from_arrays(cls, data: dict[str, Any]) -> LogisticScorer:
        return cls(np.asarray(data["weights"], dtype=np.float64), float(data["bias"]))


@dataclass
class NeighbourScorer:
    """The similarity-weighted mean of ``labels`` over the ``k`` nearest ``vectors``."""

    kind: ClassVar[str] = "knn"
    vectors: np.ndarray
    labels: np.ndarray
    k: int = 10
    _matrix: np.ndarray | None = field(default=None, init=False, repr=False)
    """``vectors`` as float32, made once (stored as float16 to halve the file)."""

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def score(self, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
        if self._matrix is None:
            self._matrix = np.ascontiguousarray(self.vectors, dtype=np.float32)
        vectors = self._matrix
        k = min(self.k, len(self.labels))
        out = np.empty(len(x))
        for start in range(0, len(x), chunk):
            part = x[start : start + chunk].astype(np.float32)
            # One prompt at a time (the gateway) skips BLAS: its threads waking up beside the
            # embedder's spinning onnxruntime threads cost ~5 ms on 2 cores; einsum, 0.2 ms.
            sims = (
                np.einsum("ij,kj->ik", part, vectors)
                if len(part) <= SMALL_BATCH
                else part @ vectors.T
            )
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            weights = np.maximum(np.take_along_axis(sims, top, axis=1), 0.0) + 1e-3
            # A weak prior of one half keeps p off exact 0 and 1 (and breaks ties by distance).
            out[start : start + chunk] = ((weights * self.labels[top]).sum(1) + 0.05) / (
                weights.sum(1) + 0.1
            )
        return out

    @classmethod
    def fit(
        cls, x: np.ndarray, y: np.ndarray, x_held: np.ndarray, y_held: np.ndarray
    ) -> tuple[NeighbourScorer, dict[str, Any]]:
        fits = [cls(x.astype(np.float16), y.astype(np.float32), k) for k in K_GRID]
        losses = [log_loss(f.score(x_held), y_held) for f in fits]
        best = int(np.argmin(losses))
        return fits[best], {"k": K_GRID[best], "heldout_log_loss": round(losses[best], 5)}

    def arrays(self) -> dict[str, Any]:
        return {"vectors": self.vectors.astype(np.float16), "labels": self.labels, "k": self.k}

    @classmethod
    def from_arrays(cls, data: dict[str, Any]) -> NeighbourScorer:
        return cls(
            np.asarray(data["vectors"], dtype=np.float16),
            np.asarray(data["labels"], dtype=np.float32),
            int(data["k"]),
        )
