"""``thrifty distill train|predict|eval|export`` end to end (hashing embedder, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _distill_data import make_pairs
from thrifty.cli import app
from thrifty.distill import write_pairs

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("distill")
    train, held = root / "train.jsonl", root / "held.jsonl"
    write_pairs(make_pairs(200, seed=1), train)
    write_pairs(make_pairs(80, seed=2), held)
    code, out = invoke(
        "distill",
        "train",
        str(train),
        "-o",
        str(root / "model"),
        "--embedder",
        "hashing",
        "--target-agreement",
        "0.95",
        "--folds",
        "3",
    )
    assert code == 0, out
    assert "student on 200 pairs (4 answers)" in out
    return root, train, held


def test_predict_writes_an_answer_or_null_per_line(trained: tuple[Path, Path, Path]) -> None:
    root, _, held = trained
    inputs = root / "inputs.jsonl"
    inputs.write_text(held.read_text() + json.dumps({"input": "zqx vvv 12345"}) + "\n")
    code, out = invoke(
        "distill", "predict", str(root / "model"), str(inputs), "-o", str(root / "out.jsonl")
    )
    assert code == 0, out
    lines = [json.loads(x) for x in (root / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 81 and all(set(x) == {"output", "confidence"} for x in lines)
    expected = [json.loads(x)["output"] for x in held.read_text().splitlines()]
    answered = [(x["output"], e) for x, e in zip(lines, expected, strict=False) if x["output"]]
    assert len(answered) > 40 and all(a == e for a, e in answered)
    assert lines[-1]["output"] is None


def test_eval_prints_the_table_and_draws_the_plot(trained: tuple[Path, Path, Path]) -> None:
    root, train, held = trained
    code, out = invoke(
        "distill",
        "eval",
        str(root / "model"),
        str(held),
        "--train",
        str(train),
        "--plot",
        str(root / "eval.png"),
    )
    assert code == 0, out
    assert "coverage" in out and "teacher calls saved" in out and "after 200 teacher calls" in out
    assert (root / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out = invoke("distill", "eval", str(root / "model"), str(held), "--json")
    report = json.loads(out)
    assert code == 0 and report["pairs"] == 80
    assert report["coverage"] > 0.5 and report["agreement"] >= 0.95


def test_export_writes_openai_finetuning_jsonl(trained: tuple[Path, Path, Path]) -> None:
    root, train, _ = trained
    code, out = invoke(
        "distill",
        "export",
        str(train),
        "-o",
        str(root / "ft.jsonl"),
        "--system",
        "Name the intent.",
    )
    assert code == 0 and "exported 200 pairs" in out
    first = json.loads((root / "ft.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]


@pytest.mark.parametrize("command", ["train", "predict", "eval", "export"])
def test_help_shows_an_example(command: str) -> None:
    code, out = invoke("distill", command, "--help")
    assert code == 0 and "Example: thrifty distill" in out


def test_bad_usage_exits_2_and_failed_work_exits_1(trained: tuple[Path, Path, Path]) -> None:
    root, train, held = trained
    assert invoke("distill", "train", str(root / "missing.jsonl"), "-o", str(root / "m"))[0] == 2
    assert (
        invoke(
            "distill",
            "train",
            str(train),
            "-o",
            str(root / "m"),
            "--head",
            "forest",
            "--embedder",
            "hashing",
        )[0]
        == 2
    )
    assert invoke("distill", "eval", str(root / "model"), str(held), "--plot", "x.svg")[0] == 2
    assert invoke("distill", "predict", str(root), str(held), "-o", str(root / "o.jsonl"))[0] == 2
    code, out = invoke(
        "distill",
        "predict",
        str(root / "model"),
        str(held),
        "-o",
        str(root / "no-such-dir" / "o.jsonl"),
    )
    assert code == 1 and "cannot write" in out


def test_train_add_retrains_on_kept_and_new_pairs(tmp_path: Path) -> None:
    first, more = tmp_path / "first.jsonl", tmp_path / "more.jsonl"
    write_pairs(make_pairs(120, seed=4), first)
    extra = [{"input": f"cancel my subscription {w}", "output": "cancel"}
             for w in ("now", "please", "today", "asap", "thanks", "at once")] * 5  # fmt: skip
    more.write_text("".join(json.dumps(p) + "\n" for p in extra))
    model = tmp_path / "model"
    code, out = invoke("distill", "train", str(first), "-o", str(model), "--embedder", "hashing",
                       "--folds", "3", "--target-agreement", "0.9")  # fmt: skip
    assert code == 0, out
    assert (model / "pairs.jsonl").is_file() and (model / "dense.npy").is_file()
    code, out = invoke("distill", "train", str(more), "-o", str(model), "--add",
                       "--folds", "3", "--target-agreement", "0.9")  # fmt: skip
    assert code == 0, out
    assert "student on 150 pairs (5 answers)" in out
    meta = json.loads((model / "student.json").read_text())
    assert "cancel" in meta["labels"] and meta["featurizer"]["embedder"] == "hashing"
    assert len((model / "pairs.jsonl").read_text().splitlines()) == 150
    code, out = invoke("distill", "train", str(more), "-o", str(tmp_path / "none"), "--add")
    assert code != 0 and "student model dir" in out.replace("\n", " ")
