"""Training, answering, and the model dir (arrays and JSON, no pickle)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _distill_data import make_pairs
from thrifty.distill import (
    Featurizer,
    StudentConfig,
    evaluate,
    learning_curve,
    load_student,
    save_student,
    train_student,
)
from thrifty.distill.modeldir import ARRAYS_FILE, META_FILE
from thrifty.errors import ConfigError

HASHING = Featurizer(embedder="hashing", lexical_dim=128)


def trained(heads: tuple[str, ...] = ("ridge",), score: str = "margin", n: int = 240):
    pairs = make_pairs(n, seed=1)
    config = StudentConfig(heads=heads, score=score, target_agreement=0.95)
    student = train_student(
        [p.input for p in pairs], [p.output or "" for p in pairs], featurizer=HASHING, config=config
    )
    return student, config


@pytest.mark.parametrize(
    ("heads", "score"),
    [(("ridge",), "margin"), (("knn",), "prob"), (("ridge", "knn"), "committee")],
)
def test_a_student_answers_what_it_learned_and_defers_on_the_unknown(heads, score) -> None:
    student, _ = trained(heads, score)
    report = evaluate(student, make_pairs(120, seed=2))
    assert report.coverage > 0.5 and report.agreement >= 0.95
    assert student.info["pairs"] == 240 and student.info["classes"] == 4
    answer, conf = student.answer("my card has not arrived yet please")
    assert answer == "card_arrival" and conf >= student.gate.threshold
    nonsense, low = student.answer("zqx vvv 12345")
    assert nonsense is None and low < student.gate.threshold


def test_the_model_dir_round_trips_without_pickle(tmp_path: Path) -> None:
    student, _ = trained(("ridge", "knn"), "committee")
    save_student(student, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / META_FILE).read_text())
    assert meta["featurizer"]["embedder"] == "hashing" and meta["gate"]["score"] == "committee"
    with np.load(tmp_path / "m" / ARRAYS_FILE, allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)
    again = load_student(tmp_path / "m")
    texts = [p.input for p in make_pairs(30, seed=3)]
    before, after = student.predict(texts), again.predict(texts)
    assert [a for a, _ in after] == [a for a, _ in before]
    assert [c for _, c in after] == pytest.approx([c for _, c in before], rel=1e-5)
    assert again.labels == student.labels and again.gate == student.gate


def test_loading_anything_else_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a student model dir"):
        load_student(tmp_path)
    student, _ = trained()
    save_student(student, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / META_FILE).read_text())
    (tmp_path / "m" / META_FILE).write_text(json.dumps({**meta, "format": "other/9"}))
    with pytest.raises(ConfigError, match="unknown model format"):
        load_student(tmp_path / "m")


def test_an_untrainable_set_and_bad_settings_fail_early() -> None:
    with pytest.raises(ConfigError, match="at least two"):
        train_student(["one"], ["a"], featurizer=HASHING)
    with pytest.raises(ConfigError):
        StudentConfig(heads=())
    with pytest.raises(ConfigError):
        StudentConfig(folds=1)


def test_the_learning_curve_grows_with_teacher_calls() -> None:
    student, config = trained()
    points = learning_curve(
        student, make_pairs(120, seed=1), make_pairs(60, seed=2), config, steps=3
    )
    assert [p.teacher_calls for p in points] == sorted(p.teacher_calls for p in points)
    assert points[-1].teacher_calls == 120
    assert points[-1].coverage >= points[0].coverage
