"""Training a student on teacher pairs, with its gate calibrated on held-out predictions.

Every pair is held out once: the heads are fitted ``folds`` times on the other pairs and score
the held-out ones (out-of-fold predictions). Those predictions fit each head's temperature and
place the gate's bar at the target agreement; the heads are then fitted once more on all pairs.
Calibrating on out-of-fold predictions uses every pair for both jobs, which matters most when
the teacher has answered only a few hundred requests (the online cold start).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from thrifty.distill.features import Featurizer
from thrifty.distill.gate import Gate, calibrate, confidence, coverage_curve
from thrifty.distill.heads import Head, fit_temperature, make_head
from thrifty.distill.student import Student
from thrifty.errors import ConfigError


@dataclass(frozen=True, slots=True)
class StudentConfig:
    """How to build and calibrate a student (stored in its model dir).

    ``heads`` names one head or a committee (e.g. ``("logistic", "mlp")``); ``score`` says how
    confidence is read (see :data:`thrifty.distill.gate.SCORES`); ``head_options`` maps a head
    kind to its keyword arguments.
    """

    heads: tuple[str, ...] = ("ridge",)
    score: str = "margin"
    target_agreement: float = 0.97
    folds: int = 5
    seed: int = 0
    head_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.heads:
            raise ConfigError("a student needs at least one head")
        if self.folds < 2:
            raise ConfigError("folds must be at least 2 (the gate is calibrated out of fold)")
        Gate(score=self.score, target=self.target_agreement)  # validates both
        if not 0.0 < self.target_agreement <= 1.0:
            raise ConfigError("target agreement must be in (0, 1]")

    def new_heads(self) -> list[Head]:
        """Untrained heads, one per name in ``heads``."""
        return [make_head(kind, **self.head_options.get(kind, {})) for kind in self.heads]


def _folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold id per row, classes spread evenly across folds (stratified where possible)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    start = 0
    for cls in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == cls))
        fold[rows] = (np.arange(len(rows)) + start) % folds
        start += len(rows)
    return fold


def out_of_fold(
    x: np.ndarray, y: np.ndarray, n_classes: int, config: StudentConfig
) -> list[np.ndarray]:
    """Each head's held-out logits for every row (``config.folds`` fits per head)."""
    fold = _folds(y, config.folds, config.seed)
    logits = [np.zeros((len(y), n_classes), dtype=np.float32) for _ in config.heads]
    for k in range(config.folds):
        held = fold == k
        if not held.any() or held.all():
            continue
        for i, head in enumerate(config.new_heads()):
            head.fit(x[~held], y[~held], n_classes)
            logits[i][held] = head.logits(x[held])
    return logits


def fit_rows(
    x: np.ndarray, answers: Sequence[str], featurizer: Featurizer, config: StudentConfig
) -> Student:
    """A trained :class:`~thrifty.distill.student.Student` from feature rows already computed.

    Raises:
        ConfigError: fewer than two pairs, or rows and answers of different lengths.
    """
    if len(answers) != len(x):
        raise ConfigError(f"{len(x)} feature rows for {len(answers)} answers")
    if len(answers) < 2:
        raise ConfigError("a student needs at least two teacher pairs")
    labels = sorted(set(answers))
    index = {label: i for i, label in enumerate(labels)}
    y = np.fromiter((index[a] for a in answers), dtype=np.int64, count=len(answers))
    n_classes = len(labels)
    folds = min(config.folds, len(y))
    cfg = config if folds == config.folds else _with_folds(config, folds)
    held_logits = out_of_fold(x, y, n_classes, cfg)
    heads = config.new_heads()
    for head, z in zip(heads, held_logits, strict=True):
        if head.tempered:
            head.temperature = fit_temperature(z, y)
        head.fit(x, y, n_classes)
    held = [h.proba_of(z) for h, z in zip(heads, held_logits, strict=True)]
    top, conf = confidence(held, config.score)
    correct = top == y
    threshold = calibrate(conf, correct, config.target_agreement)
    curve = coverage_curve(conf.astype(np.float64), correct)
    at = [p for p in curve if p.threshold >= threshold]
    info = {
        "pairs": len(y),
        "classes": n_classes,
        "held_out_accuracy": float(correct.mean()),
        "held_out_coverage": at[-1].coverage if at else 0.0,
        "held_out_agreement": at[-1].agreement if at else 1.0,
    }
    gate = Gate(threshold=threshold, score=config.score, target=config.target_agreement)
    return Student(labels, featurizer, heads, gate, info)


def _with_folds(config: StudentConfig, folds: int) -> StudentConfig:
    return replace(config, folds=max(2, folds))


def train_student(
    texts: Sequence[str],
    answers: Sequence[str],
    *,
    featurizer: Featurizer | None = None,
    config: StudentConfig | None = None,
) -> Student:
    """A student trained on teacher pairs, its gate calibrated to ``config.target_agreement``."""
    featurizer = featurizer or Featurizer()
    return fit_rows(featurizer.transform(texts), answers, featurizer, config or StudentConfig())
