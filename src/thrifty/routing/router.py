"""The learned router: logistic regression on the prompt embedding, in numpy.

It predicts ``p``, the probability that the cheapest model of a route answers a request well
enough, from the prompt's embedding (thrifty's local MiniLM by default). :func:`train_router`
fits it on recorded outcomes, keeps a held-out part to calibrate its threshold (a target share of
strong calls or a target quality, see ``calibration.py``) and stores the whole calibration curve,
so a gateway can choose another target without the data. The file is small JSON (a 384-float
weight vector, the curve, the embedder's name); no pickle, no scikit-learn at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import ConfigError
from thrifty.routing.calibration import (
    CurvePoint,
    point_for_share,
    routing_curve,
    threshold_for_quality,
)

FORMAT = "thrifty-router/1"
#: L2 penalties tried when fitting; the one with the best held-out log loss is kept.
L2_GRID = (0.01, 0.1, 1.0, 10.0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0,
                 iterations: int = 30) -> tuple[np.ndarray, float]:
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
        p = _sigmoid(xb @ w)
        grad = xb.T @ (p - y) + penalty * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w[:-1], float(w[-1])


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


@dataclass
class LearnedRouter:
    """A fitted router: ``p = sigmoid(w·embedding + b)``; cheap when ``p >= threshold``.

    Attributes:
        weights, bias: the logistic regression.
        threshold: the calibrated threshold in use.
        embedder: the embedder's name for :func:`thrifty.semantic.embedder.make_embedder`.
        curve: strong share and quality per threshold, on held-out outcomes.
        info: how it was trained (counts, target, penalty), for ``thrifty route eval``.
    """

    weights: np.ndarray
    bias: float
    threshold: float
    embedder: str = "minilm"
    curve: list[CurvePoint] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def probability(self, vectors: np.ndarray) -> np.ndarray:
        """``p`` for each row of ``vectors`` (``(n, dim)``)."""
        if vectors.shape[-1] != self.weights.shape[0]:
            raise ConfigError(f"the router expects {self.weights.shape[0]}-dimensional "
                              f"embeddings ({self.embedder}), got {vectors.shape[-1]}")
        return _sigmoid(vectors.astype(np.float64) @ self.weights + self.bias)

    def retarget(self, *, strong_share: float | None = None, quality: float | None = None,
                 threshold: float | None = None) -> LearnedRouter:
        """The same router with its threshold moved along the stored calibration curve.

        Raises:
            ConfigError: more than one target, or a target out of range.
        """
        given = [v for v in (strong_share, quality, threshold) if v is not None]
        if len(given) > 1:
            raise ConfigError("give one of target strong share, target quality, threshold")
        if strong_share is not None:
            new = point_for_share(self.curve, strong_share).threshold
        elif quality is not None:
            new = threshold_for_quality(self.curve, quality).threshold
        elif threshold is not None:
            new = float(threshold)
        else:
            return self
        return LearnedRouter(self.weights, self.bias, new, self.embedder, self.curve, self.info)

    # ----------------------------------------------------------------- file
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "embedder": self.embedder, "threshold": self.threshold,
            "bias": self.bias, "weights": [round(float(w), 7) for w in self.weights],
            "curve": [c.as_dict() for c in self.curve], "info": self.info,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> LearnedRouter:
        """Read a router file.

        Raises:
            ConfigError: naming the file, when it is missing, not JSON or not a router.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the router file: "
                              f"{exc.strerror or exc}") from exc
        except ValueError as exc:
            raise ConfigError(f"{path}: the router file is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{path}: not a thrifty router file (format {FORMAT!r})")
        try:
            return cls(
                weights=np.asarray(data["weights"], dtype=np.float64),
                bias=float(data["bias"]),
                threshold=float(data["threshold"]),
                embedder=str(data.get("embedder", "minilm")),
                curve=[CurvePoint(**c) for c in data.get("curve", [])],
                info=dict(data.get("info") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: the router file is damaged: {exc!r}") from exc


def train_router(
    vectors: np.ndarray, cheap_ok: np.ndarray, strong_ok: np.ndarray | None = None, *,
    embedder: str = "minilm", heldout: float = 0.25, target_strong_share: float | None = None,
    target_quality: float | None = None, seed: int = 0,
) -> LearnedRouter:
    """Fit on part of the outcomes, calibrate the threshold on the rest.

    Args:
        vectors: ``(n, dim)`` prompt embeddings.
        cheap_ok: 1 where the cheap model's answer was good enough.
        strong_ok: 1 where the strong model's answer was good (None: always).
        heldout: the share kept out of fitting, for choosing the penalty and the threshold.
        target_strong_share, target_quality: at most one; default a 0.4 strong share.

    Raises:
        ConfigError: too few outcomes, a single class, or two targets.
    """
    y = np.asarray(cheap_ok, dtype=np.float64)
    n = len(y)
    if vectors.shape[0] != n or n < 20:
        raise ConfigError(f"need at least 20 outcomes with one embedding each, got {n}")
    if y.min() == y.max():
        raise ConfigError("the outcomes need both cheap answers that were good enough and "
                          "some that were not")
    if target_strong_share is not None and target_quality is not None:
        raise ConfigError("give a target strong share or a target quality, not both")
    strong = np.ones(n) if strong_ok is None else np.asarray(strong_ok, dtype=np.float64)
    order = np.random.default_rng(seed).permutation(n)
    cut = max(round(n * (1 - heldout)), 10)
    fit, held = order[:cut], order[cut:]
    fits = []
    for l2 in L2_GRID:
        w, b = fit_logistic(vectors[fit], y[fit], l2)
        fits.append((_log_loss(_sigmoid(vectors[held] @ w + b), y[held]), l2, w, b))
    loss, l2, w, b = min(fits, key=lambda f: f[0])
    curve = routing_curve(_sigmoid(vectors[held] @ w + b), y[held], strong[held])
    router = LearnedRouter(w, b, 0.0, embedder, curve, {
        "outcomes": n, "fit": len(fit), "heldout": len(held), "cheap_ok_rate": float(y.mean()),
        "l2": l2, "heldout_log_loss": round(loss, 5),
    })
    if target_quality is not None:
        router = router.retarget(quality=target_quality)
        router.info["target_quality"] = target_quality
    else:
        share = 0.4 if target_strong_share is None else target_strong_share
        router = router.retarget(strong_share=share)
        router.info["target_strong_share"] = share
    return router
