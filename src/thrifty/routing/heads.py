"""Two more router heads beside ``scorers.py``'s logistic and kNN ones, both plain numpy:

- ``mlp``: one hidden ReLU layer, trained by Adam with early stopping on the held-out part; it can
  combine the embedding with the cheap prompt features non-linearly (a long prompt *about* maths
  is harder than either alone).
- ``mf``: RouteLLM's matrix-factorisation idea, reimplemented for recorded correctness: a
  projection ``P`` of the prompt and one vector per model, ``P(model m right) =
  sigmoid(v_m · P x + b_m)``, fitted on both models' outcomes at once. ``p`` (the cheap answer is
  good enough) is then ``1 - p_strong * (1 - p_cheap)``: the cheap model only loses where the
  strong one would have been right and it is not. Learning the strong model's outcomes too is what
  a single-label head cannot do: a prompt that both get wrong is no reason to pay for GPT-4.

Both keep their weights in a router's ``.npz`` (or JSON) as plain arrays; no pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from thrifty.routing.scorers import log_loss, sigmoid

#: Hidden widths tried for ``mlp``; the best held-out log loss wins.
HIDDEN_GRID = (32, 128)
#: Ranks tried for ``mf``.
RANK_GRID = (8, 32)


class _Adam:
    """Adam over a list of arrays, updated in place."""

    def __init__(self, params: list[np.ndarray], lr: float) -> None:
        self.params, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= self.lr * (m / (1 - 0.9**self.t)) / (np.sqrt(v / (1 - 0.999**self.t)) + 1e-8)


def _train(
    params: list[np.ndarray],
    loss_grad: Any,
    held_loss: Any,
    n: int,
    *,
    seed: int,
    epochs: int = 80,
    batch: int = 128,
    lr: float = 2e-3,
    patience: int = 6,
) -> float:
    """Minibatch Adam; keeps the parameters of the best held-out loss. Returns that loss."""
    rng = np.random.default_rng(seed)
    adam = _Adam(params, lr)
    best, best_params, waited = np.inf, [p.copy() for p in params], 0
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            adam.step(loss_grad(order[start : start + batch]))
        loss = held_loss()
        if loss < best - 1e-5:
            best, best_params, waited = loss, [p.copy() for p in params], 0
        else:
            waited += 1
            if waited >= patience:
                break
    for p, kept in zip(params, best_params, strict=True):
        p[...] = kept
    return float(best)


@dataclass
class MLPScorer:
    """``p = sigmoid(w2 · relu(W1 x + b1) + b2)``."""

    kind: ClassVar[str] = "mlp"
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.w1.shape[1])

    def score(self, x: np.ndarray) -> np.ndarray:
        hidden = np.maximum(x.astype(np.float32) @ self.w1.T + self.b1, 0.0)
        return sigmoid((hidden @ self.w2 + self.b2).astype(np.float64))

    @classmethod
    def _fit_one(
        cls, x: np.ndarray, y: np.ndarray, xh: np.ndarray, yh: np.ndarray, width: int
    ) -> tuple[MLPScorer, float]:
        rng = np.random.default_rng(width)
        d = x.shape[1]
        w1 = (rng.standard_normal((width, d)) * np.sqrt(2.0 / d)).astype(np.float32)
        b1 = np.zeros(width, np.float32)
        w2 = (rng.standard_normal(width) * np.sqrt(1.0 / width)).astype(np.float32)
        b2 = np.array([np.log(max(y.mean(), 1e-3) / max(1 - y.mean(), 1e-3))], np.float32)
        x32, l2 = x.astype(np.float32), 1e-4

        def loss_grad(rows: np.ndarray) -> list[np.ndarray]:
            xb, yb = x32[rows], y[rows]
            pre = xb @ w1.T + b1
            hidden = np.maximum(pre, 0.0)
            err = (sigmoid(hidden @ w2 + b2) - yb).astype(np.float32) / len(rows)
            back = np.outer(err, w2) * (pre > 0)
            return [
                back.T @ xb + l2 * w1,
                back.sum(0),
                hidden.T @ err + l2 * w2,
                err.sum(keepdims=True),
            ]

        scorer = cls(w1, b1, w2, b2)
        loss = _train(
            [w1, b1, w2, b2], loss_grad, lambda: log_loss(scorer.score(xh), yh), len(y), seed=width
        )
        return scorer, loss

    @classmethod
    def fit(
        cls, x: np.ndarray, y: np.ndarray, x_held: np.ndarray, y_held: np.ndarray
    ) -> tuple[MLPScorer, dict[str, Any]]:
        fits = [cls._fit_one(x, y, x_held, y_held, w) for w in HIDDEN_GRID]
        best = int(np.argmin([loss for _, loss in fits]))
        return fits[best][0], {
            "hidden": HIDDEN_GRID[best],
            "heldout_log_loss": round(fits[best][1], 5),
        }

    def arrays(self) -> dict[str, Any]:
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    @classmethod
    def from_arrays(cls, data: dict[str, Any]) -> MLPScorer:
        return cls(*(np.asarray(data[k], dtype=np.float32) for k in ("w1", "b1", "w2", "b2")))


@dataclass
class FactorScorer:
    """``p_m = sigmoid(v_m · P x + b_m)`` for m in (cheap, strong); ``p = 1 - p_s (1 - p_c)``."""

    kind: ClassVar[str] = "mf"
    #: Fitted on both models' outcomes: ``y`` is ``(n, 2)``, columns cheap_ok and strong_ok.
    needs_both: ClassVar[bool] = True
    projection: np.ndarray
    models: np.ndarray
    bias: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1])

    def both(self, x: np.ndarray) -> np.ndarray:
        """``(n, 2)``: the chance each model (cheap, strong) answers right."""
        z = (x.astype(np.float32) @ self.projection.T) @ self.models.T + self.bias
        return sigmoid(z.astype(np.float64))

    def score(self, x: np.ndarray) -> np.ndarray:
        p = self.both(x)
        return 1.0 - p[:, 1] * (1.0 - p[:, 0])

    @classmethod
    def _fit_one(
        cls, x: np.ndarray, y: np.ndarray, xh: np.ndarray, yh: np.ndarray, rank: int
    ) -> tuple[FactorScorer, float]:
        rng = np.random.default_rng(rank)
        d = x.shape[1]
        proj = (rng.standard_normal((rank, d)) / np.sqrt(d)).astype(np.float32)
        models = (rng.standard_normal((2, rank)) * 0.1).astype(np.float32)
        rate = np.clip(y.mean(0), 1e-3, 1 - 1e-3)
        bias = np.log(rate / (1 - rate)).astype(np.float32)
        x32, l2 = x.astype(np.float32), 1e-4
        scorer = cls(proj, models, bias)

        def loss_grad(rows: np.ndarray) -> list[np.ndarray]:
            xb = x32[rows]
            latent = xb @ proj.T
            err = (sigmoid((latent @ models.T + bias).astype(np.float64)) - y[rows]).astype(
                np.float32
            ) / len(rows)
            return [
                (err @ models).T @ xb + l2 * proj,
                err.T @ latent + l2 * models,
                err.sum(0),
            ]

        def held() -> float:
            p = scorer.both(xh)
            return log_loss(p[:, 0], yh[:, 0]) + log_loss(p[:, 1], yh[:, 1])

        loss = _train([proj, models, bias], loss_grad, held, len(y), seed=rank)
        return scorer, loss

    @classmethod
    def fit(
        cls, x: np.ndarray, y: np.ndarray, x_held: np.ndarray, y_held: np.ndarray
    ) -> tuple[FactorScorer, dict[str, Any]]:
        fits = [cls._fit_one(x, y, x_held, y_held, r) for r in RANK_GRID]
        best = int(np.argmin([loss for _, loss in fits]))
        return fits[best][0], {"rank": RANK_GRID[best], "heldout_log_loss": round(fits[best][1], 5)}

    def arrays(self) -> dict[str, Any]:
        return {"projection": self.projection, "models": self.models, "bias": self.bias}

    @classmethod
    def from_arrays(cls, data: dict[str, Any]) -> FactorScorer:
        return cls(
            *(np.asarray(data[k], dtype=np.float32) for k in ("projection", "models", "bias"))
        )
