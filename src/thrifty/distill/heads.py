"""Student heads: small classifiers over feature rows, trained with scikit-learn, served by numpy.

Each head is trained by scikit-learn and then keeps only numpy arrays (weights, or the stored
rows of a kNN head), so a model dir holds arrays and JSON, never a pickle, and answering one
request is a few matrix products with no scikit-learn call on the path. Classes a training set
lacks get no probability (a ``-inf`` logit), so every head speaks the same class space.

Probabilities are calibrated by a temperature fitted on held-out logits
(:func:`fit_temperature`): one scalar per head that keeps the ranking and makes the
probabilities honest enough to average across a committee.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from thrifty.errors import ConfigError

NEG_INF = float("-inf")
#: Batches up to this many rows are multiplied without BLAS (see :func:`_matmul`).
SMALL_BATCH = 8


def _matmul_t(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w.T``; for one request at a time through einsum, not BLAS: OpenBLAS threads waking
    beside onnxruntime's spinning ones cost milliseconds on 2 cores (see routing/scorers.py)."""
    if len(x) <= SMALL_BATCH:
        return np.einsum("ij,kj->ik", x, w)
    return x @ w.T


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (``-inf`` logits get 0)."""
    z = logits / np.float32(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the held-out negative log-likelihood of ``y``."""
    from scipy.optimize import minimize_scalar

    finite = np.where(np.isfinite(logits), logits, -1e4).astype(np.float64)
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        p = softmax(finite, float(np.exp(log_t)))
        return float(-np.log(np.maximum(p[rows, y], 1e-12)).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


def _full_rows(values: np.ndarray, classes: np.ndarray, n_classes: int, fill: float) -> np.ndarray:
    """Rows of ``values`` (one per class scikit-learn saw) spread over all ``n_classes``."""
    out = np.full((n_classes, *values.shape[1:]), fill, dtype=np.float32)
    out[classes] = values
    return out


class Head(ABC):
    """A classifier over feature rows with numpy-only inference.

    ``fit`` trains it; ``logits`` scores rows (``-inf`` for classes it cannot answer);
    ``arrays``/``params`` are what a model dir stores and :meth:`restore` rebuilds it from.
    """

    kind: ClassVar[str]
    #: Whether a temperature is fitted on held-out logits (kNN vote shares have their own scale).
    tempered: ClassVar[bool] = True
    temperature: float = 1.0

    @abstractmethod
    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        """Train on feature rows ``x`` and class ids ``y`` in ``range(n_classes)``."""

    @abstractmethod
    def logits(self, x: np.ndarray) -> np.ndarray:
        """``(len(x), n_classes)`` scores."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """The learned arrays (stored with ``numpy.savez``, no pickle)."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The JSON-able settings that rebuild the head around its arrays."""

    @abstractmethod
    def _load(self, arrays: dict[str, np.ndarray]) -> None:
        """Take the learned arrays back."""

    def proba_of(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities from this head's logits."""
        return softmax(logits, self.temperature)

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities."""
        return self.proba_of(self.logits(x))

    @classmethod
    def restore(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Head:
        """A head of this kind from stored params and arrays."""
        options = {k: v for k, v in params.items() if k != "temperature"}
        head = cls(**options)
        head.temperature = float(params.get("temperature", 1.0))
        head._load(arrays)
        return head


class LogisticHead(Head):
    """Multinomial logistic regression (L2, lbfgs): the default, fast to train and to answer."""

    kind = "logistic"

    def __init__(self, c: float = 10.0, max_iter: int = 100) -> None:
        self.c = c
        self.max_iter = max_iter
        self._w = np.zeros((0, 0), dtype=np.float32)
        self._b = np.zeros(0, dtype=np.float32)

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        classes = np.unique(y)
        if len(classes) == 1:  # nothing to separate: that class everywhere
            self._w = np.zeros((n_classes, x.shape[1]), dtype=np.float32)
            self._b = _full_rows(np.zeros(1), classes, n_classes, NEG_INF)
            return
        with warnings.catch_warnings():  # a capped iteration count is a choice, not a fault
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(C=self.c, max_iter=self.max_iter).fit(x, y)
        coef, intercept = model.coef_, model.intercept_
        if len(classes) == 2:  # scikit-learn keeps one row for two classes
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        self._w = _full_rows(coef, classes, n_classes, 0.0)
        self._b = _full_rows(intercept, classes, n_classes, NEG_INF)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return _matmul_t(x, self._w) + self._b

    def arrays(self) -> dict[str, np.ndarray]:
        return {"w": self._w, "b": self._b}

    def params(self) -> dict[str, Any]:
        return {"c": self.c, "max_iter": self.max_iter, "temperature": self.temperature}

    def _load(self, arrays: dict[str, np.ndarray]) -> None:
        self._w, self._b = arrays["w"], arrays["b"]


class RidgeHead(Head):
    """Least squares onto one-hot answers (ridge, closed form), read through a softmax.

    One linear solve, no iterations: it trains in a fraction of a second where an iterative
    solver takes minutes on a busy two-core machine, which keeps out-of-fold calibration and
    online retraining cheap. Its temperature, fitted on held-out scores, makes the outputs
    probabilities.
    """

    kind = "ridge"

    def __init__(self, alpha: float = 0.1) -> None:
        if alpha <= 0:
            raise ConfigError("ridge needs alpha > 0")
        self.alpha = alpha
        self._w = np.zeros((0, 0), dtype=np.float32)
        self._b = np.zeros(0, dtype=np.float32)

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        xc = x - mean
        targets = np.zeros((len(y), n_classes))
        targets[np.arange(len(y)), y] = 1.0
        # Solve in whichever space is smaller: features (primal) or pairs (dual).
        if xc.shape[0] < xc.shape[1]:
            gram = xc @ xc.T
            gram[np.diag_indices_from(gram)] += self.alpha
            w = xc.T @ np.linalg.solve(gram, targets - targets.mean(axis=0))
        else:
            gram = xc.T @ xc
            gram[np.diag_indices_from(gram)] += self.alpha
            w = np.linalg.solve(gram, xc.T @ (targets - targets.mean(axis=0)))
        seen = np.zeros(n_classes, dtype=bool)
        seen[y] = True
        self._w = w.T.astype(np.float32)
        b = targets.mean(axis=0) - mean @ w
        self._b = np.where(seen, b, NEG_INF).astype(np.float32)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return _matmul_t(x, self._w) + self._b

    def arrays(self) -> dict[str, np.ndarray]:
        return {"w": self._w, "b": self._b}

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "temperature": self.temperature}

    def _load(self, arrays: dict[str, np.ndarray]) -> None:
        self._w, self._b = arrays["w"], arrays["b"]


class MLPHead(Head):
    """One hidden ReLU layer (scikit-learn's ``MLPClassifier``, adam, early stopping off)."""

    kind = "mlp"

    def __init__(
        self, hidden: int = 256, alpha: float = 1e-3, max_iter: int = 200, seed: int = 0
    ) -> None:
        self.hidden = hidden
        self.alpha = alpha
        self.max_iter = max_iter
        self.seed = seed
        self._layers: list[tuple[np.ndarray, np.ndarray]] = []

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        classes = np.unique(y)
        if len(classes) == 1:
            self._layers = [
                (
                    np.zeros((x.shape[1], n_classes), dtype=np.float32),
                    _full_rows(np.zeros(1), classes, n_classes, NEG_INF),
                )
            ]
            return
        model = MLPClassifier(
            (self.hidden,), alpha=self.alpha, max_iter=self.max_iter, random_state=self.seed
        )
        with warnings.catch_warnings():  # a capped epoch count is a choice, not a fault
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, y)
        (w1, w2), (b1, b2) = model.coefs_, model.intercepts_
        if len(classes) == 2:  # one logistic output unit: logits (0, z)
            w2, b2 = np.hstack([np.zeros_like(w2), w2]), np.concatenate([[0.0], b2])
        self._layers = [
            (w1.astype(np.float32), b1.astype(np.float32)),
            (
                _full_rows(w2.T, classes, n_classes, 0.0).T,
                _full_rows(b2, classes, n_classes, NEG_INF),
            ),
        ]

    def logits(self, x: np.ndarray) -> np.ndarray:
        for w, b in self._layers[:-1]:
            x = np.maximum(_matmul_t(x, w.T) + b, 0)
        w, b = self._layers[-1]
        return _matmul_t(x, w.T) + b

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for i, (w, b) in enumerate(self._layers):
            out[f"w{i}"], out[f"b{i}"] = w, b
        return out

    def params(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "alpha": self.alpha,
            "max_iter": self.max_iter,
            "seed": self.seed,
            "temperature": self.temperature,
        }

    def _load(self, arrays: dict[str, np.ndarray]) -> None:
        self._layers = [(arrays[f"w{i}"], arrays[f"b{i}"]) for i in range(len(arrays) // 2)]


class KNNHead(Head):
    """OCaTS-style nearest neighbours: similarity-weighted votes of the ``k`` nearest pairs.

    A neighbour at cosine ``s`` weighs ``exp((s - 1) / tau)``; a prior mass at ``s0`` competes
    with the votes, so a query far from every stored pair gets low probabilities everywhere (the
    distance criterion of OCaTS) and a split vote gets a low top probability (its entropy one).
    """

    kind = "knn"
    tempered = False

    def __init__(self, k: int = 10, tau: float = 0.05, s0: float = 0.7) -> None:
        if k < 1 or tau <= 0:
            raise ConfigError("knn needs k >= 1 and tau > 0")
        self.k = k
        self.tau = tau
        self.s0 = s0
        self._x = np.zeros((0, 0), dtype=np.float32)
        self._y = np.zeros(0, dtype=np.int64)
        self._n_classes = 0

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        self._x = (x / np.maximum(norms, 1e-12)).astype(np.float32)
        self._y = np.asarray(y, dtype=np.int64)
        self._n_classes = n_classes

    def _votes(self, x: np.ndarray) -> np.ndarray:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sims = _matmul_t(x.astype(np.float32), self._x)
        k = min(self.k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weights = np.exp((np.take_along_axis(sims, top, axis=1) - 1.0) / self.tau)
        votes = np.zeros((len(x), self._n_classes + 1), dtype=np.float64)
        np.add.at(votes, (np.arange(len(x))[:, None], self._y[top]), weights)
        votes[:, -1] = np.exp((self.s0 - 1.0) / self.tau)  # the prior: "none of these"
        return votes

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Log vote shares, the prior's mass kept in the denominator."""
        votes = self._votes(x)
        with np.errstate(divide="ignore"):
            return np.log(votes[:, :-1] / votes.sum(axis=1, keepdims=True)).astype(np.float32)

    def proba_of(self, logits: np.ndarray) -> np.ndarray:
        """Vote shares with the prior's mass left out of every class (rows sum below 1)."""
        return np.exp(logits)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x": self._x, "y": self._y, "n": np.array([self._n_classes])}

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "tau": self.tau, "s0": self.s0}

    def _load(self, arrays: dict[str, np.ndarray]) -> None:
        self._x, self._y, self._n_classes = arrays["x"], arrays["y"], int(arrays["n"][0])


#: Head kinds by name (strategies as data).
HEADS: dict[str, type[Head]] = {h.kind: h for h in (LogisticHead, RidgeHead, MLPHead, KNNHead)}


def make_head(kind: str, **options: Any) -> Head:
    """A fresh head of a kind in :data:`HEADS`.

    Raises:
        ConfigError: an unknown kind.
    """
    cls = HEADS.get(kind)
    if cls is None:
        raise ConfigError(f"unknown student head {kind!r}; use one of: {', '.join(HEADS)}")
    return cls(**options)
