"""A student on disk: ``student.json`` (labels, settings, gate, training report) and
``arrays.npz`` (the heads' learned arrays).

No pickle: the arrays are read with ``allow_pickle=False`` and everything else is JSON, so
loading a model dir cannot run code from it (joblib/skops would store scikit-learn objects; the
heads keep only numpy arrays, so they are not needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.distill.features import Featurizer
from thrifty.distill.gate import Gate
from thrifty.distill.heads import HEADS
from thrifty.distill.student import Student
from thrifty.errors import ConfigError

FORMAT = "thrifty-student/1"
META_FILE = "student.json"
ARRAYS_FILE = "arrays.npz"


def save_student(student: Student, directory: str | Path) -> Path:
    """Write the student into ``directory`` (created if needed); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    heads = []
    for i, head in enumerate(student.heads):
        heads.append({"kind": head.kind, "params": head.params()})
        arrays.update({f"h{i}.{name}": value for name, value in head.arrays().items()})
    threshold = student.gate.threshold
    meta: dict[str, Any] = {
        "format": FORMAT,
        "labels": student.labels,
        "featurizer": student.featurizer.config(),
        "heads": heads,
        "gate": {
            "threshold": None if threshold == float("inf") else threshold,
            "score": student.gate.score,
            "target": student.gate.target,
        },
        "info": student.info,
    }
    np.savez(directory / ARRAYS_FILE, allow_pickle=False, **arrays)
    (directory / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return directory


def load_student(directory: str | Path) -> Student:
    """The student saved in ``directory``.

    Raises:
        ConfigError: not a model dir, another format, or files that do not match.
    """
    directory = Path(directory)
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{directory} is not a student model dir: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{directory}: unknown model format {meta.get('format')!r}")
    try:
        heads = []
        for i, spec in enumerate(meta["heads"]):
            prefix = f"h{i}."
            own = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            heads.append(HEADS[spec["kind"]].restore(spec["params"], own))
        gate_meta = meta["gate"]
        threshold = gate_meta["threshold"]
        gate = Gate(
            threshold=float("inf") if threshold is None else float(threshold),
            score=gate_meta["score"],
            target=float(gate_meta["target"]),
        )
        return Student(
            list(meta["labels"]),
            Featurizer(**meta["featurizer"]),
            heads,
            gate,
            dict(meta.get("info", {})),
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{directory}: damaged model dir ({exc!r})") from exc
