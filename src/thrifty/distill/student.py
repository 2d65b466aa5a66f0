"""The student: a featurizer, one head or a committee of heads, and a calibrated gate.

``Student.answer(text)`` returns ``(answer, confidence)``, the answer None where the gate
stays shut and the teacher must answer. Training lives in :mod:`thrifty.distill.training`,
the model dir in :mod:`thrifty.distill.modeldir`; this module only answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thrifty.distill.features import Featurizer
from thrifty.distill.gate import Gate, confidence
from thrifty.distill.heads import Head


@dataclass(slots=True)
class Student:
    """Answers classification-style requests with the teacher's closed set of answers.

    Attributes:
        labels: the teacher's distinct answers; head outputs index into it.
        featurizer: how texts become feature rows.
        heads: one head, or several voting as a committee.
        gate: the calibrated bar on the confidence.
        info: what training measured (sizes, held-out agreement), kept in the model dir.
    """

    labels: list[str]
    featurizer: Featurizer
    heads: list[Head]
    gate: Gate
    info: dict[str, Any] = field(default_factory=dict)

    def decide_rows(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and confidences for feature rows, before the gate."""
        return confidence([head.proba(x) for head in self.heads], self.gate.score)

    def predict(self, texts: Sequence[str]) -> list[tuple[str | None, float]]:
        """``(answer or None, confidence)`` per text; None where the gate defers."""
        if not texts:
            return []
        top, conf = self.decide_rows(self.featurizer.transform(texts))
        bar = self.gate.threshold
        return [
            (self.labels[t] if c >= bar else None, float(c))
            for t, c in zip(top.tolist(), conf.tolist(), strict=True)
        ]

    def answer(self, text: str) -> tuple[str | None, float]:
        """The student's answer to one request, or None to ask the teacher; and its confidence."""
        return self.predict([text])[0]
