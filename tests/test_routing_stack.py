"""The ``stack`` router head: trained on grouped outcomes, saved without pickle, loaded back to
the same probabilities, and trained/evaluated through ``thrifty route``."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from thrifty.cli import app
from thrifty.errors import ConfigError
from thrifty.routing.calibration import evaluate
from thrifty.routing.difficulty import N_DIFFICULTY, difficulty_features
from thrifty.routing.router import LearnedRouter, train_router

pytest.importorskip("sklearn")
INPUTS = "embedding+prompt+difficulty"


def questions(n: int, seed: int) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray, list]:
    """Four subjects (clouds of vectors); the cheap model trails more in later subjects, and
    within a subject on "NOT" questions with arithmetic (a difficulty the text shows)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(4, 16))
    group = rng.integers(0, 4, n)
    x = centres[group] + rng.normal(scale=1.0, size=(n, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tricky = rng.random(n) < 0.4
    texts = [
        (f"Which of the following is NOT equal to {i} + {i % 9} * 3?" if t else f"Who wrote {i}?")
        + "\nA. one\nB. two\nC. three\nD. four"
        for i, t in enumerate(tricky)
    ]
    strong = (rng.random(n) < 0.9).astype(float)
    miss = group / 8 + 0.4 * tricky
    cheap = np.where(strong == 1, rng.random(n) > miss, rng.random(n) < 0.3).astype(float)
    return x.astype(np.float32), texts, cheap, strong, [f"s{g}" for g in group]


def test_difficulty_features_read_the_question() -> None:
    plain = difficulty_features("Who wrote it?\nA. a\nB. b\nC. c\nD. d")
    tricky = difficulty_features("Which of the following is NOT 3 + 4?\nA. 7\nB. 8\nC. 1\nD. 2")
    assert len(plain) == len(tricky) == N_DIFFICULTY
    assert tricky[7] == 1.0 and plain[7] == 0.0  # numeric options
    assert tricky[13] == 1.0 and plain[13] == 0.0  # NOT in capitals


def test_stack_head_routes_round_trips_and_needs_its_inputs(tmp_path: Path) -> None:
    x, texts, cheap, strong, groups = questions(1500, seed=1)
    router = train_router(
        x, cheap, strong, texts=texts, groups=groups, kind="stack", inputs=INPUTS,
        target_quality=0.95,
    )  # fmt: skip
    assert router.kind == "stack" and router.dim == 16 and router.info["trees"] > 0
    x_new, texts_new, cheap_new, strong_new, _ = questions(800, seed=7)
    p = router.probability(x_new, texts_new)
    threshold = float(np.quantile(p, 0.3))
    random_quality = 0.7 * cheap_new.mean() + 0.3 * strong_new.mean()
    assert evaluate(p, cheap_new, strong_new, threshold).quality > random_quality + 0.02
    file = tmp_path / "router.npz"
    router.save(file)
    with np.load(file, allow_pickle=False) as npz:  # plain arrays only: loads without pickle
        assert "trees.threshold" in npz.files and "ref_vectors" in npz.files
    again = LearnedRouter.load(file)
    assert again.kind == "stack" and again.inputs == INPUTS
    assert again.threshold == router.threshold
    np.testing.assert_allclose(again.probability(x_new, texts_new), p)
    with pytest.raises(ConfigError, match=r"save it as \.npz"):
        router.save(tmp_path / "router.json")
    with pytest.raises(ConfigError, match="embedding\\+prompt\\+difficulty"):
        train_router(x, cheap, strong, texts=texts, groups=groups, kind="stack")


def test_route_train_and_eval_a_stack_router(tmp_path: Path) -> None:
    rng = random.Random(3)
    lines = []
    for i in range(900):
        hard = i % 2 == 1
        text = (
            f"Which of the following is NOT {i} + {i % 7}? (case {i})" if hard
            else f"Who wrote the book {i}? (case {i})"
        ) + "\nA. 1\nB. 2\nC. 3\nD. 4"  # fmt: skip
        lines.append(
            json.dumps(
                {
                    "prompt": text,
                    "subject": "hard" if hard else "easy",
                    "mixtral_correct": rng.random() < (0.1 if hard else 0.9),
                    "gpt4_correct": rng.random() < 0.9,
                }
            )
        )
    data = tmp_path / "outcomes.jsonl.gz"
    data.write_bytes(gzip.compress("\n".join(lines).encode()))
    columns = ["--cheap-column", "mixtral_correct", "--strong-column", "gpt4_correct"]
    file = tmp_path / "stack.npz"
    runner = CliRunner()
    result = runner.invoke(app, [
        "route", "train", "--data", str(data), "-o", str(file), "--split", "dev", *columns,
        "--group-column", "subject", "--kind", "stack", "--inputs", INPUTS,
        "--target-quality", "0.95", "--embedder", "hashing",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    router = LearnedRouter.load(file)
    assert router.kind == "stack" and router.info["group_names"] == ["easy", "hard"]
    result = runner.invoke(app, [
        "route", "eval", "--router", str(file), "--data", str(data), "--split", "test", *columns,
        "--cost-ratio", "0.06", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["router"]["relative_quality"] > 0.85
