"""The confidence gate: scores, the coverage curve and calibration to a target agreement."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.distill.gate import Gate, calibrate, confidence, coverage_curve, wilson_lower
from thrifty.errors import ConfigError


def test_calibrate_takes_the_lowest_bar_that_keeps_the_target() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(4000)
    correct = rng.random(4000) < scores  # higher confidence, more often right
    bar = calibrate(scores, correct, 0.9, z=0.0)
    served = scores >= bar
    assert correct[served].mean() >= 0.9
    lower = scores >= np.max(scores[scores < bar])  # one more step down breaks the target
    assert correct[lower].mean() < 0.9 or lower.sum() == served.sum()
    assert 0.15 < served.mean() < 0.35  # P(right | s) = s: mean of s over [b, 1] is 0.9 at b=0.8


def test_the_wilson_bound_is_stricter_on_few_answers() -> None:
    assert wilson_lower(40, 40, 1.0) < 0.98 < wilson_lower(4000, 4000, 1.0)
    scores = np.linspace(0, 1, 40)
    assert calibrate(scores, np.ones(40, dtype=bool), 0.98, z=1.0) == float("inf")
    assert calibrate(scores, np.ones(40, dtype=bool), 0.98, z=0.0) == 0.0


def test_ties_are_admitted_together() -> None:
    points = coverage_curve(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 1, 0, 0]))
    assert [(p.threshold, p.answered) for p in points] == [(0.9, 1), (0.5, 3), (0.1, 4)]
    assert points[1].agreement == pytest.approx(2 / 3)


def test_scores_read_probabilities_three_ways() -> None:
    a = np.array([[0.6, 0.3, 0.1], [0.4, 0.35, 0.25]])
    b = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]])
    top, margin = confidence([a], "margin")
    assert top.tolist() == [0, 0] and margin == pytest.approx([0.3, 0.05])
    _, prob = confidence([a], "prob")
    assert prob == pytest.approx([0.6, 0.4])
    top, committee = confidence([a, b], "committee")  # one dissenting head drags it down
    assert top.tolist() == [1, 0] and committee == pytest.approx([0.3, 0.4])


def test_unknown_scores_and_targets_fail_early() -> None:
    with pytest.raises(ConfigError):
        Gate(score="vibes")
    with pytest.raises(ConfigError):
        confidence([np.ones((1, 2))], "vibes")
    with pytest.raises(ConfigError):
        calibrate(np.ones(3), np.ones(3, dtype=bool), 1.5)
