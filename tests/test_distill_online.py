"""The online distiller: cold start, retraining, shadow mode and audits."""

from __future__ import annotations

from _distill_data import make_pairs
from thrifty.distill import Featurizer, Mode, OnlineDistiller, StudentConfig

CONFIG = StudentConfig(target_agreement=0.95, folds=3)


def distiller(**options) -> OnlineDistiller:
    featurizer = Featurizer(embedder="hashing", lexical_dim=128)
    return OnlineDistiller(featurizer, CONFIG, retrain_every=40, min_pairs=40, **options)


def run(d: OnlineDistiller, n: int) -> tuple[int, int]:
    """Replay ``n`` requests; returns (served, served and agreeing with the teacher)."""
    served = agreed = 0
    for pair in make_pairs(n, seed=5):
        teacher = pair.output or ""
        decision = d.decide(pair.input)
        if decision.answer is None or decision.audit:
            d.observe(pair.input, teacher, decision)
        if decision.answer is not None:
            served += 1
            agreed += decision.answer == teacher
    return served, agreed


def test_a_cold_student_defers_then_takes_over() -> None:
    d = distiller()
    assert d.decide("where is my card").answer is None  # nothing learned yet
    served, agreed = run(d, 240)
    assert d.trainings >= 1 and d.student is not None
    assert served > 100 and agreed / served >= 0.95
    assert d.pairs == 240 - served  # only the teacher's answers are learned from


def test_shadow_mode_serves_nothing_but_measures_agreement() -> None:
    d = distiller(mode=Mode.SHADOW)
    served, _ = run(d, 200)
    assert served == 0 and d.pairs == 200
    assert d.shadow.compared > 50 and d.shadow.rate >= 0.95


def test_shadow_mode_promotes_itself_once_agreement_is_proven() -> None:
    d = distiller(mode=Mode.SHADOW, promote_after=30)
    served, _ = run(d, 240)
    assert d.mode is Mode.SERVE and served > 0


def test_audits_send_a_share_of_served_answers_to_the_teacher_too() -> None:
    d = distiller(audit_rate=0.5, seed=1)
    served, _ = run(d, 240)
    assert 0 < d.audits.compared < served
    assert d.audits.rate >= 0.9
