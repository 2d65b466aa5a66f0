"""The replay's student: trained before the student step on teacher pairs of support questions
that are not in the replayed traffic (the support set's train split when the data is present,
else the shipped sample's own questions), each labelled with its intent's reference answer —
what a teacher that answers by intent would have said. Hashing features: no model to load."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
from pathlib import Path

from thrifty.distill import Featurizer, Gate, StudentConfig, save_student, train_student
from thrifty.replay.workload import Item, is_test

#: Teacher pairs at most (the support set's train split is ~1,700 rows).
MAX_PAIRS = 2000
#: Below this many pairs the gate cannot be calibrated (the shipped sample): the student then
#: answers every request, which the replay's quality flags count.
MIN_CALIBRATED = 200


def teacher_pairs(data: Path | None, items: list[Item]) -> list[tuple[str, str]]:
    """(question, answer) pairs: the answer is the first replayed item's answer of its intent."""
    canonical: dict[str, str] = {}
    for item in items:
        if item.kind == "support":
            canonical.setdefault(item.klass, item.answer)
    path = None if data is None else data / "support" / "bitext_customer_support.csv.gz"
    if path is None or not path.exists():
        return [(i.question, canonical[i.klass]) for i in items if i.kind == "support"]
    with gzip.open(path, "rb") as raw:
        rows = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))
    pairs = [
        (r["instruction"].strip(), canonical[r["intent"]])
        for r in rows
        if not is_test(r["instruction"]) and r["intent"] in canonical
    ]
    return pairs[:MAX_PAIRS]


def train(data: Path | None, items: list[Item], directory: Path) -> Path:
    """Train and save the student; its model directory."""
    pairs = teacher_pairs(data, items)
    student = train_student(
        [q for q, _ in pairs],
        [a for _, a in pairs],
        featurizer=Featurizer(embedder="hashing", lexical_dim=512),
        config=StudentConfig(target_agreement=0.95),
    )
    if len(pairs) < MIN_CALIBRATED:
        student = dataclasses.replace(student, gate=Gate(threshold=0.0, score=student.gate.score))
    return save_student(student, directory)
