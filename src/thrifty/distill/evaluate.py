"""How a student does against the teacher on held-out pairs, and how it learns.

``evaluate`` answers the three questions of ``thrifty distill eval``: what share the student
answers (coverage), how often those answers equal the teacher's (agreement) and how many teacher
calls that saves, at the student's own bar and at every other bar (the coverage curve).
``learning_curve`` retrains the same kind of student on growing prefixes of the training pairs:
coverage and agreement by the number of teacher calls that paid for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thrifty.distill.gate import CurvePoint, coverage_curve
from thrifty.distill.pairs import Pair
from thrifty.distill.student import Student
from thrifty.distill.training import StudentConfig, fit_rows
from thrifty.errors import ConfigError


@dataclass(frozen=True, slots=True)
class EvalReport:
    """A student measured on held-out teacher pairs."""

    pairs: int
    threshold: float
    coverage: float
    """Share of the pairs the student answers at its bar."""
    agreement: float
    """Share of its answers equal to the teacher's (1.0 when it answers none)."""
    teacher_calls_saved: int
    accuracy: float
    """Agreement of its best guess on every pair, gate ignored."""
    curve: list[CurvePoint]


def _require_outputs(pairs: Sequence[Pair]) -> list[str]:
    answers = [p.output for p in pairs]
    if not answers or any(a is None for a in answers):
        raise ConfigError("evaluation needs pairs with the teacher's 'output' on every line")
    return [a for a in answers if a is not None]


def evaluate_rows(student: Student, rows: np.ndarray, answers: Sequence[str]) -> EvalReport:
    """:func:`evaluate` on feature rows already computed."""
    top, conf = student.decide_rows(rows)
    guesses = np.asarray(student.labels, dtype=object)[top]
    correct = guesses == np.asarray(answers, dtype=object)
    served = conf >= student.gate.threshold
    answered = int(served.sum())
    return EvalReport(
        pairs=len(answers),
        threshold=student.gate.threshold,
        coverage=answered / len(answers) if len(answers) else 0.0,
        agreement=float(correct[served].mean()) if answered else 1.0,
        teacher_calls_saved=answered,
        accuracy=float(correct.mean()) if len(answers) else 0.0,
        curve=coverage_curve(conf.astype(np.float64), correct),
    )


def evaluate(student: Student, pairs: Sequence[Pair]) -> EvalReport:
    """Coverage, agreement and teacher calls saved on held-out pairs.

    Raises:
        ConfigError: no pairs, or a pair without the teacher's answer.
    """
    answers = _require_outputs(pairs)
    return evaluate_rows(student, student.featurizer.transform([p.input for p in pairs]), answers)


@dataclass(frozen=True, slots=True)
class LearningPoint:
    """A student trained on the first ``teacher_calls`` pairs, measured on held-out pairs."""

    teacher_calls: int
    coverage: float
    agreement: float


def learning_curve(
    student: Student,
    train: Sequence[Pair],
    held: Sequence[Pair],
    config: StudentConfig,
    *,
    steps: int = 6,
) -> list[LearningPoint]:
    """Coverage and agreement of students retrained on growing prefixes of ``train``
    (sizes spaced geometrically up to all of it), each measured on ``held``."""
    train_answers, held_answers = _require_outputs(train), _require_outputs(held)
    featurizer = student.featurizer
    train_rows = featurizer.transform([p.input for p in train])
    held_rows = featurizer.transform([p.input for p in held])
    sizes = sorted({int(s) for s in np.geomspace(min(20, len(train)), len(train), steps)})
    points = []
    for size in sizes:
        if len(set(train_answers[:size])) < 2:
            continue
        trained = fit_rows(train_rows[:size], train_answers[:size], featurizer, config)
        report = evaluate_rows(trained, held_rows, held_answers)
        points.append(LearningPoint(size, report.coverage, report.agreement))
    return points
