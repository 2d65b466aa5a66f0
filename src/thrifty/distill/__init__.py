"""Distillation: a local student that answers the easy, repeated traffic of one task.

The teacher (a large model) answers; its (input, answer) pairs train a small student (an
embedding plus lexical features, a ridge/logistic/MLP/kNN head or a committee); a gate calibrated
on held-out pairs lets the student answer only where it agrees with the teacher at a target
rate. ``Student.answer(text) -> (answer | None, confidence)`` serves;
``OnlineDistiller`` learns as teacher answers arrive, with shadow mode and audits.
"""

from __future__ import annotations

from thrifty.distill.evaluate import EvalReport, evaluate, learning_curve
from thrifty.distill.features import Featurizer
from thrifty.distill.gate import Gate, calibrate
from thrifty.distill.modeldir import load_student, save_student
from thrifty.distill.online import Decision, Mode, OnlineDistiller
from thrifty.distill.pairs import Pair, export_openai, read_pairs, write_pairs
from thrifty.distill.student import Student
from thrifty.distill.training import StudentConfig, train_student

__all__ = [
    "Decision",
    "EvalReport",
    "Featurizer",
    "Gate",
    "Mode",
    "OnlineDistiller",
    "Pair",
    "Student",
    "StudentConfig",
    "calibrate",
    "evaluate",
    "export_openai",
    "learning_curve",
    "load_student",
    "read_pairs",
    "save_student",
    "train_student",
    "write_pairs",
]
