"""A student that learns while the teacher works: the loop the gateway (or a replay) drives.

Cache & Distil's online setting: every request goes through :meth:`OnlineDistiller.decide`;
where it returns no answer, the caller asks the teacher and hands the answer to
:meth:`OnlineDistiller.observe`, which stores the pair and retrains the student every
``retrain_every`` new pairs (the gate recalibrated each time, out of fold). The distiller never
calls a model itself, so the same object serves a sync replay and the async gateway.

Two safety nets keep the served answers honest:

- **shadow mode**: the student answers nothing; what it *would* have served is compared with the
  teacher's answer, so agreement is measured before any traffic moves. With ``promote_after``
  set, the distiller starts serving once that many shadow answers agree at the target rate.
- **audits**: in serve mode a share ``audit_rate`` of the student's answers is flagged; the caller
  asks the teacher too and passes its answer to ``observe``. Audited pairs join the training set,
  so calibration also sees the easy requests the student now takes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from thrifty.distill.features import Featurizer
from thrifty.distill.student import Student
from thrifty.distill.training import StudentConfig, fit_rows


class Mode(StrEnum):
    """Whether the student's answers are served."""

    SHADOW = "shadow"
    SERVE = "serve"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request."""

    answer: str | None
    """The student's answer to serve; None: ask the teacher and call ``observe``."""
    confidence: float
    proposal: str | None = None
    """The student's best guess, served or not (None before the first training)."""
    gate_open: bool = False
    """Whether the gate would let the proposal through (in shadow mode too)."""
    audit: bool = False
    """Served, but ask the teacher as well and call ``observe`` (an audit sample)."""


@dataclass(slots=True)
class Agreement:
    """Running count of student answers compared with the teacher's."""

    compared: int = 0
    agreed: int = 0

    @property
    def rate(self) -> float:
        """Share that agreed (1.0 before any comparison)."""
        return self.agreed / self.compared if self.compared else 1.0

    def add(self, same: bool) -> None:
        self.compared += 1
        self.agreed += same


@dataclass(slots=True)
class OnlineDistiller:
    """Decides per request between the student and the teacher, and learns from the teacher.

    Args:
        featurizer: how texts become feature rows (share the gateway's embedder through
            :meth:`Featurizer.use_embedder`).
        config: heads, confidence score, target agreement of the gate.
        mode: :attr:`Mode.SERVE`, or :attr:`Mode.SHADOW` to measure before serving.
        retrain_every: teacher pairs between two trainings.
        min_pairs: pairs needed before the first training.
        audit_rate: share of served answers also sent to the teacher.
        promote_after: in shadow mode, serve once this many would-be answers were compared and
            agreed at the target rate (None: stay in shadow mode).
    """

    featurizer: Featurizer
    config: StudentConfig = field(default_factory=StudentConfig)
    mode: Mode = Mode.SERVE
    retrain_every: int = 50
    min_pairs: int = 20
    audit_rate: float = 0.0
    promote_after: int | None = None
    seed: int = 0
    student: Student | None = None
    shadow: Agreement = field(default_factory=Agreement)
    audits: Agreement = field(default_factory=Agreement)
    trainings: int = 0
    _rows: list[np.ndarray] = field(default_factory=list)
    _answers: list[str] = field(default_factory=list)
    _pending: int = 0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def pairs(self) -> int:
        """Teacher pairs learned from so far."""
        return len(self._answers)

    def decide(self, text: str) -> Decision:
        """The decision for one request text."""
        return self.decide_row(self.featurizer.transform([text])[0])

    def decide_row(self, row: np.ndarray) -> Decision:
        """The decision for one request already turned into a feature row."""
        if self.student is None:
            return Decision(None, 0.0)
        top, conf = self.student.decide_rows(row[None, :])
        c = float(conf[0])
        proposal = self.student.labels[int(top[0])]
        gate_open = self.student.gate.opens(c)
        if not gate_open or self.mode is Mode.SHADOW:
            return Decision(None, c, proposal, gate_open)
        audit = self.audit_rate > 0 and self._rng.random() < self.audit_rate
        return Decision(proposal, c, proposal, True, audit)

    def observe(
        self,
        text: str,
        teacher_answer: str,
        decision: Decision | None = None,
        row: np.ndarray | None = None,
    ) -> None:
        """Learn the teacher's answer to a request (a deferral, a shadow or an audit)."""
        if decision is not None and decision.gate_open and decision.proposal is not None:
            (self.audits if decision.audit else self.shadow).add(
                decision.proposal == teacher_answer
            )
        self._rows.append(self.featurizer.transform([text])[0] if row is None else row)
        self._answers.append(teacher_answer)
        self._pending += 1
        self._maybe_promote()
        if self._pending >= self.retrain_every and self.pairs >= self.min_pairs:
            self.retrain()

    def _maybe_promote(self) -> None:
        if (
            self.mode is Mode.SHADOW
            and self.promote_after is not None
            and self.shadow.compared >= self.promote_after
            and self.shadow.rate >= self.config.target_agreement
        ):
            self.mode = Mode.SERVE

    def retrain(self) -> Student | None:
        """Train a new student on every pair so far (None while all answers are one class)."""
        self._pending = 0
        if len(set(self._answers)) < 2:
            return None
        self.student = fit_rows(np.vstack(self._rows), self._answers, self.featurizer, self.config)
        self.trainings += 1
        return self.student
