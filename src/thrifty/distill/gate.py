"""The confidence gate: when the student may answer, calibrated to a target agreement.

A student answers a request only where its confidence clears a bar; elsewhere the teacher
answers. The bar is not a guess: :func:`calibrate` picks, on held-out teacher pairs, the lowest
confidence at which the student's answers above it still agree with the teacher at the target
rate, so the share it takes over is as large as the target allows.

How confidence is read from class probabilities is a strategy (:data:`SCORES`):

- ``prob``: the top probability;
- ``margin``: top minus runner-up (Cache & Distil's margin sampling);
- ``committee``: the lowest probability any committee member gives the committee's answer
  (query by committee: one dissenting head is enough to ask the teacher).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from thrifty.errors import ConfigError


def _prob(mean: np.ndarray, members: Sequence[np.ndarray], top: np.ndarray) -> np.ndarray:
    return mean[np.arange(len(top)), top]


def _margin(mean: np.ndarray, members: Sequence[np.ndarray], top: np.ndarray) -> np.ndarray:
    if mean.shape[1] < 2:
        return mean[:, 0]
    two = np.partition(mean, mean.shape[1] - 2, axis=1)[:, -2:]
    return two[:, 1] - two[:, 0]


def _committee(mean: np.ndarray, members: Sequence[np.ndarray], top: np.ndarray) -> np.ndarray:
    rows = np.arange(len(top))
    return np.min([p[rows, top] for p in members], axis=0)


#: Confidence scores by name: ``(mean probabilities, each member's, answers) -> scores``.
SCORES: dict[str, Callable[[np.ndarray, Sequence[np.ndarray], np.ndarray], np.ndarray]] = {
    "prob": _prob,
    "margin": _margin,
    "committee": _committee,
}


def confidence(probas: Sequence[np.ndarray], score: str) -> tuple[np.ndarray, np.ndarray]:
    """The committee's answers (class ids) and their confidence under ``score``.

    Raises:
        ConfigError: an unknown score name.
    """
    fn = SCORES.get(score)
    if fn is None:
        raise ConfigError(f"unknown confidence score {score!r}; use one of: {', '.join(SCORES)}")
    mean = probas[0] if len(probas) == 1 else np.mean(probas, axis=0)
    top = mean.argmax(axis=1)
    return top, fn(mean, probas, top)


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """What the student would do with the bar at ``threshold``."""

    threshold: float
    coverage: float
    """Share of requests the student answers."""
    agreement: float
    """Share of those answers equal to the teacher's (1.0 when it answers none)."""
    answered: int


def coverage_curve(scores: np.ndarray, correct: np.ndarray) -> list[CurvePoint]:
    """Coverage and agreement at every distinct bar, highest bar first."""
    order = np.argsort(-scores, kind="stable")
    s, c = scores[order], np.asarray(correct, dtype=np.float64)[order]
    hits = np.cumsum(c)
    # The last index of each run of equal scores: a bar admits all ties or none.
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    n = len(s)
    return [
        CurvePoint(float(s[i]), (i + 1) / n, float(hits[i] / (i + 1)), int(i + 1)) for i in last
    ]


def wilson_lower(agreed: float, n: int, z: float) -> float:
    """Lower end of the Wilson score interval of a proportion ``agreed / n``."""
    if n == 0:
        return 0.0
    p = agreed / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def calibrate(
    scores: np.ndarray, correct: np.ndarray, target: float, *, z: float = 1.0, min_answered: int = 1
) -> float:
    """The lowest bar whose answers agree with the teacher at ``target`` or better.

    Agreement is read over everything at or above the bar, as the lower end of its Wilson
    interval (``z`` standard errors): a bar set on 40 held-out answers that all agreed must not
    promise 97 % on the next thousand. The bar stops at the last point where that bound still
    reaches ``target`` (a lower bar would add more wrong answers than the target allows). With no
    such point the bar sits above every score: the student defers everything until it has
    learned more.

    Raises:
        ConfigError: a target outside (0, 1].
    """
    if not 0.0 < target <= 1.0:
        raise ConfigError(f"target agreement must be in (0, 1], not {target}")
    best = float("inf")
    for point in coverage_curve(np.asarray(scores, dtype=np.float64), correct):
        agreed = point.agreement * point.answered
        if point.answered >= min_answered and wilson_lower(agreed, point.answered, z) >= target:
            best = point.threshold
    return best


@dataclass(frozen=True, slots=True)
class Gate:
    """A bar on one confidence score, with the target it was calibrated to."""

    threshold: float = float("inf")
    score: str = "margin"
    target: float = 0.97

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ConfigError(f"unknown confidence score {self.score!r}")

    def opens(self, confidence: float) -> bool:
        """True when the student may answer at this confidence."""
        return confidence >= self.threshold
