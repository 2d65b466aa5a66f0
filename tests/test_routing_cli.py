"""``thrifty route train`` and ``thrifty route eval`` on synthetic outcome files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thrifty.cli import app
from thrifty.routing.router import LearnedRouter

runner = CliRunner()
EASY = [
    "what time do you open",
    "where is the nearest branch",
    "how do I log in",
    "what is my balance",
    "can I change my address",
]
HARD = [
    "derive the closed form of the integral with proof",
    "prove the theorem about primes step by step",
    "write a compiler for a lisp dialect",
    "explain the tax treaty between two states",
    "optimise this portfolio under constraints",
]


def outcomes(path: Path, n: int, seed: int) -> Path:
    """Easy prompts: the cheap model was right 90 % of the time; hard ones 10 %."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        hard = i % 2 == 1
        text = f"{rng.choice(HARD if hard else EASY)} (case {i})"
        ok = rng.random() < (0.1 if hard else 0.9)
        lines.append(json.dumps({"prompt": text, "cheap_ok": ok}))
    path.write_text("\n".join(lines) + "\n")
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(("kind", "suffix"), [("logistic", "json"), ("knn", "npz")])
def test_train_then_eval(tmp_path: Path, kind: str, suffix: str) -> None:
    train = outcomes(tmp_path / "train.jsonl", 400, seed=1)
    held = outcomes(tmp_path / "held.jsonl", 200, seed=2)
    router_file = tmp_path / f"router.{suffix}"
    code, out = invoke(
        "route",
        "train",
        "--data",
        str(train),
        "-o",
        str(router_file),
        "--target-strong-share",
        "0.5",
        "--kind",
        kind,
        "--embedder",
        "hashing",
    )
    assert code == 0, out
    assert f"trained a {kind} router on 400 outcomes" in out
    router = LearnedRouter.load(router_file)
    assert router.embedder == "hashing" and router.info["target_strong_share"] == 0.5
    code, out = invoke("route", "eval", "--router", str(router_file), "--data", str(held), "--json")
    assert code == 0, out
    report = json.loads(out)
    mine = report["router"]
    assert abs(mine["strong_share"] - 0.5) < 0.1
    # Hard prompts go to the strong model: quality far above the cheap model's ~50 %.
    assert mine["relative_quality"] > 0.85
    assert report["curve"][0]["strong_share"] == 0.0
    assert report["curve"][-1]["strong_share"] == 1.0
    code, out = invoke("route", "eval", "--router", str(router_file), "--data", str(held))
    assert code == 0 and "strong share" in out and "of strong-only" in out


def test_quality_target_and_usage_errors(tmp_path: Path) -> None:
    train = outcomes(tmp_path / "train.jsonl", 300, seed=3)
    router_file = tmp_path / "router.json"
    code, out = invoke(
        "route",
        "train",
        "--data",
        str(train),
        "-o",
        str(router_file),
        "--target-quality",
        "0.9",
        "--embedder",
        "hashing",
    )
    assert code == 0, out
    assert LearnedRouter.load(router_file).info["target_quality"] == 0.9
    code, out = invoke(
        "route",
        "train",
        "--data",
        str(train),
        "-o",
        str(router_file),
        "--target-quality",
        "0.9",
        "--target-strong-share",
        "0.3",
    )
    assert code == 2 and "not both" in out
    code, out = invoke(
        "route",
        "train",
        "--data",
        str(tmp_path / "missing.jsonl"),
        "-o",
        str(router_file),
        "--embedder",
        "hashing",
    )
    assert code == 2 and "missing.jsonl" in out
    code, out = invoke(
        "route", "eval", "--router", str(tmp_path / "nope.json"), "--data", str(train)
    )
    assert code == 2 and "nope.json" in out


def test_routellm_style_file_with_columns_split_and_new_heads(tmp_path: Path) -> None:
    """Per-model correctness columns, gzipped, one side of the fixed hash split for each step."""
    import gzip

    rng = random.Random(4)
    lines = []
    for i in range(900):
        hard = i % 2 == 1
        text = f"{rng.choice(HARD if hard else EASY)} (case {i})"
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
    router_file = tmp_path / "router.npz"
    code, out = invoke(
        "route", "train", "--data", str(data), "-o", str(router_file), "--split", "dev",
        *columns, "--kind", "mlp", "--inputs", "embedding+prompt", "--label", "no_gain",
        "--target-cost", "0.5", "--cost-ratio", "0.06", "--embedder", "hashing",
    )  # fmt: skip
    assert code == 0, out
    router = LearnedRouter.load(router_file)
    assert router.kind == "mlp" and router.inputs == "embedding+prompt"
    assert 0.4 < router.info["outcomes"] / 900 < 0.8  # the dev side only
    code, out = invoke(
        "route", "eval", "--router", str(router_file), "--data", str(data), "--split", "test",
        *columns, "--cost-ratio", "0.06", "--json",
    )  # fmt: skip
    assert code == 0, out
    report = json.loads(out)
    assert report["outcomes"] + router.info["outcomes"] == 900
    assert report["router"]["relative_quality"] > 0.85
    grouped_file = tmp_path / "grouped.json"
    code, out = invoke(
        "route", "train", "--data", str(data), "-o", str(grouped_file), "--split", "dev",
        *columns, "--group-column", "subject", "--kind", "grouped", "--target-quality", "0.95",
        "--embedder", "hashing",
    )  # fmt: skip
    assert code == 0, out
    grouped = LearnedRouter.load(grouped_file)
    assert grouped.kind == "grouped" and grouped.info["group_names"] == ["easy", "hard"]
    code, out = invoke(
        "route", "eval", "--router", str(grouped_file), "--data", str(data), "--split", "test",
        *columns, "--cost-ratio", "0.06", "--json",
    )  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["router"]["relative_quality"] > 0.85
    code, out = invoke("route", "train", "--help")
    assert code == 0 and "--cheap-column" in out and "sha256" in out


def test_train_and_eval_with_the_static_embedder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--embedder static``: trained on the static table's vectors, named so in the file, and
    evaluated (as the gateway routes) with the same table."""
    pytest.importorskip("tokenizers")
    import numpy as np

    from thrifty.semantic import static
    from thrifty.semantic.minilm_files import load_tokenizer

    vocab = load_tokenizer(None).get_vocab_size()
    np.save(tmp_path / "table.npy", np.random.default_rng(0).normal(size=(vocab, 64)))
    monkeypatch.setenv(static.TABLE_PATH_ENV, str(tmp_path / "table.npy"))
    train = outcomes(tmp_path / "train.jsonl", 400, seed=1)
    held = outcomes(tmp_path / "held.jsonl", 200, seed=2)
    router_file = tmp_path / "router.json"
    code, out = invoke(
        "route", "train", "--data", str(train), "-o", str(router_file),
        "--target-strong-share", "0.5", "--embedder", "static",
    )  # fmt: skip
    assert code == 0, out
    router = LearnedRouter.load(router_file)
    assert router.embedder == "static" and router.dim == 64
    code, out = invoke("route", "eval", "--router", str(router_file), "--data", str(held), "--json")
    assert code == 0, out
    assert json.loads(out)["router"]["relative_quality"] > 0.85
