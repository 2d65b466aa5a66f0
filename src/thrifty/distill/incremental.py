"""Adding teacher pairs to a trained student: the model dir keeps what it was trained on.

``thrifty distill train NEW.jsonl -o MODEL_DIR --add`` retrains the student in ``MODEL_DIR`` on
its earlier pairs plus the new ones (the gateway's ``distill.record`` file, say). The earlier
pairs are kept in the model dir (``pairs.jsonl``) with their embeddings (``dense.npy``, float16),
so only the new pairs are embedded: the costly part of training is the embedder, the heads fit
in a fraction of a second. The gate is calibrated again on the union, out of fold, as at first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from thrifty.distill.features import Featurizer
from thrifty.distill.modeldir import load_student, save_student
from thrifty.distill.pairs import Pair, read_pairs, write_pairs
from thrifty.distill.student import Student
from thrifty.distill.training import StudentConfig, fit_rows
from thrifty.errors import ConfigError

PAIRS_FILE = "pairs.jsonl"
DENSE_FILE = "dense.npy"


def train_and_keep(
    pairs: Sequence[Pair], directory: str | Path, featurizer: Featurizer, config: StudentConfig
) -> Student:
    """Train a student on ``pairs``, save it in ``directory`` with its training data."""
    texts = [p.input for p in pairs]
    dense = featurizer.embed(texts)
    student = fit_rows(
        featurizer.combine(dense, texts), [p.output or "" for p in pairs], featurizer, config
    )
    save_student(student, directory)
    _keep(directory, pairs, dense)
    return student


def add_pairs(
    pairs: Sequence[Pair], directory: str | Path, config: StudentConfig | None = None
) -> Student:
    """Retrain the student in ``directory`` on its kept pairs plus ``pairs``; saves it there.

    ``config`` None keeps the student's heads, score and target.

    Raises:
        ConfigError: the model dir is missing, or kept no training pairs (trained elsewhere:
            train it again on all the pairs).
    """
    directory = Path(directory)
    old = load_student(directory)
    if not (directory / PAIRS_FILE).is_file():
        raise ConfigError(
            f"{directory} keeps no training pairs ({PAIRS_FILE}); train it again on all pairs"
        )
    kept = read_pairs(directory / PAIRS_FILE)
    featurizer = Featurizer(**old.featurizer.config())
    dense = _dense(directory, len(kept))
    if dense is None:
        dense = featurizer.embed([p.input for p in kept])
    new_dense = featurizer.embed([p.input for p in pairs]) if pairs else dense[:0]
    everything = [*kept, *pairs]
    all_dense = np.vstack([dense, new_dense]).astype(np.float32)
    texts = [p.input for p in everything]
    config = config or StudentConfig(
        heads=tuple(h.kind for h in old.heads),
        score=old.gate.score,
        target_agreement=old.gate.target,
    )
    student = fit_rows(
        featurizer.combine(all_dense, texts),
        [p.output or "" for p in everything],
        featurizer,
        config,
    )
    save_student(student, directory)
    _keep(directory, everything, all_dense)
    return student


def _keep(directory: str | Path, pairs: Sequence[Pair], dense: np.ndarray) -> None:
    directory = Path(directory)
    write_pairs(pairs, directory / PAIRS_FILE)
    np.save(directory / DENSE_FILE, np.asarray(dense, dtype=np.float16), allow_pickle=False)


def _dense(directory: Path, rows: int) -> np.ndarray | None:
    """The kept embeddings, when they match the kept pairs."""
    try:
        dense = np.load(directory / DENSE_FILE, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return dense.astype(np.float32) if dense.ndim == 2 and len(dense) == rows else None
