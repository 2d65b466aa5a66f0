"""Teacher pairs as JSONL and the OpenAI fine-tuning export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thrifty.distill import Pair, export_openai, read_pairs, write_pairs
from thrifty.errors import ConfigError


def test_write_then_read_keeps_every_pair(tmp_path: Path) -> None:
    pairs = [Pair("where is my card?", "card_arrival"), Pair("refund please", "refund")]
    assert write_pairs(pairs, tmp_path / "p.jsonl") == 2
    assert read_pairs(tmp_path / "p.jsonl") == pairs


def test_chat_inputs_and_numeric_labels_are_read(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    chat = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]}
    path.write_text(json.dumps({**chat, "output": 11}) + "\n\n" + '{"input": "x"}\n')
    assert read_pairs(path, require_output=False) == [Pair("hi", "11"), Pair("x", None)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"output": "a"}', ":1: not a pair"),
        ("not json", ":1: not a pair"),
        ('{"input": "x"}', "no 'output'"),
        ('{"input": "x", "output": [1]}', "must be text"),
    ],
)
def test_bad_lines_name_their_number(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=message):
        read_pairs(path)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_pairs(tmp_path / "nope.jsonl")


def test_export_writes_openai_chat_finetuning_lines(tmp_path: Path) -> None:
    pairs = [Pair("where is my card?", "card_arrival"), Pair("unlabelled", None)]
    assert export_openai(pairs, tmp_path / "ft.jsonl", system="Name the intent.") == 1
    (line,) = (tmp_path / "ft.jsonl").read_text().splitlines()
    assert json.loads(line) == {
        "messages": [
            {"role": "system", "content": "Name the intent."},
            {"role": "user", "content": "where is my card?"},
            {"role": "assistant", "content": "card_arrival"},
        ]
    }
