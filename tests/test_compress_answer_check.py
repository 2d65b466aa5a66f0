"""``thrifty bench compress``: each row asked with its whole and its compressed context, the
answers compared with each other and with the gold answers; failures counted, never fatal.

The model is a FAKE reader (in-process and over loopback HTTP): it answers with the first gold
answer it finds in the prompt's context, else "unknown", so a compressed context that dropped
the answer loses it, exactly as the figures must show."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from thrifty.cli import app
from thrifty.compression import Compressor, DocumentCache
from thrifty.compression.answer_check import (
    Row,
    check,
    load_rows,
    names_gold,
    normalize,
    nq_rows,
    token_f1,
)
from thrifty.errors import ConfigError, UpstreamError
from thrifty.providers.base import Provider
from thrifty.retry import RetryPolicy
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.testing.fake_openai import FakeOpenAI

GOLD = {"Paris", "1889", "Canberra"}
FILLER = " ".join(
    f"Filler sentence number {i} talks about nothing in particular." for i in range(12)
)
ROWS = [
    Row(
        "When was the Eiffel Tower finished?",
        [FILLER, "The Eiffel Tower was finished in 1889. It stands in Paris."],
        ("1889",),
    ),
    Row(
        "What is the capital of Australia?",
        [FILLER, "Canberra is the capital of Australia."],
        ("Canberra",),
    ),
    # The answer sits in a sentence that shares no word with the question: a hard cut drops it.
    Row(
        "Which city hosts the tower?",
        " ".join(f"The tower city hosts event {i} each year." for i in range(15))
        + " Answer: Paris. "
        + " ".join(f"The city tower hosts fair {i} each spring." for i in range(15)),
        ("Paris",),
    ),
    Row("A question with no gold answers?", "Some text. " * 40),
]


def reader(context: str) -> str:
    """The FAKE model: the first gold answer in the context (by position), else unknown."""
    found = [(context.find(g), g) for g in GOLD if g in context]
    return min(found)[1] if found else "unknown"


def context_of(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"].split("\n\nQuestion:")[0]


class FakeReader(Provider):
    """FAKE provider answering with :func:`reader`; fails its first ``fail`` calls with 429."""

    name = "fake-reader"

    def __init__(self, fail: int = 0, status: int = 429) -> None:
        self.fail = fail
        self.status = status
        self.bodies: list[dict[str, Any]] = []

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        if self.fail:
            self.fail -= 1
            raise UpstreamError("FAKE limited", status=self.status, provider=self.name)
        text = reader(context_of(body))
        prompt = len(body["messages"][-1]["content"].split())
        return {
            "choices": [{"message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": 1},
        }

    def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError


def compressor() -> Compressor:
    return Compressor(HashingEmbedder(), cache=DocumentCache())


def test_normalise_f1_and_gold() -> None:
    assert normalize("The  Eiffel, Tower!") == "eiffel tower"
    assert token_f1("in 1889", "1889") == pytest.approx(2 / 3)
    assert token_f1("Paris", "paris.") == 1.0
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0
    assert names_gold("It was 1889.", ["1889"]) and not names_gold("unknown", ["1889"])


def test_each_row_is_asked_twice_and_compared() -> None:
    provider = FakeReader()
    results, summary = asyncio.run(check(ROWS, provider, compressor(), ratio=0.1, model="m"))
    assert len(provider.bodies) == 2 * len(ROWS)
    assert all(b["temperature"] == 0 and b["model"] == "m" for b in provider.bodies)
    by_question = {r.question: r for r in results}
    eiffel = by_question["When was the Eiffel Tower finished?"]
    assert eiffel.answer_whole == "1889" and eiffel.gold_whole
    assert eiffel.tokens_after < eiffel.tokens_before
    ungraded = by_question["A question with no gold answers?"]
    assert ungraded.gold_whole is None and ungraded.gold_compressed is None
    # The summary is a recount of the rows.
    graded = [r for r in results if r.gold_whole is not None]
    assert summary.rows == 4 and summary.failed == 0 and summary.graded == 3
    assert summary.right_whole == sum(bool(r.gold_whole) for r in graded) == 3
    assert summary.right_compressed == sum(bool(r.gold_compressed) for r in graded)
    assert summary.lost == sum(bool(r.gold_whole and not r.gold_compressed) for r in graded)
    assert summary.same == sum(r.same for r in results)
    assert summary.tokens_before == sum(r.tokens_before for r in results)
    assert summary.prompt_tokens_compressed < summary.prompt_tokens_whole  # type: ignore[operator]
    assert 0.0 < summary.cut < 1.0


def test_a_cut_that_drops_the_answer_is_counted_as_lost() -> None:
    hidden = ROWS[2]
    results, summary = asyncio.run(check([hidden], FakeReader(), compressor(), ratio=0.05))
    (row,) = results
    assert row.gold_whole and not row.gold_compressed and row.answer_compressed == "unknown"
    assert summary.lost == 1 and summary.gained == 0 and not row.same and row.f1 == 0.0


def test_rate_limits_are_retried_and_failures_counted() -> None:
    fast = RetryPolicy(num_retries=2, base_delay=0.0, max_delay=0.0)
    _, summary = asyncio.run(
        check(ROWS[:1], FakeReader(fail=2), compressor(), ratio=0.4, retries=fast)
    )
    assert summary.failed == 0 and summary.right_whole == 1
    results, summary = asyncio.run(
        check(ROWS[:2], FakeReader(fail=100, status=400), compressor(), ratio=0.4, retries=fast)
    )
    assert results == [] and summary.failed == 2 and len(summary.errors) == 2
    assert "UpstreamError" in summary.errors[0]


def test_rows_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(
        json.dumps({"question": "q?", "context": ["a", {"text": "b", "title": "t"}]})
        + "\n\n"
        + json.dumps({"question": "q2?", "context": "c", "answers": ["c"]})
        + "\n"
    )
    rows = load_rows(path)
    assert [r.question for r in rows] == ["q?", "q2?"] and rows[1].answers == ("c",)
    assert len(load_rows(path, limit=1)) == 1
    for bad, message in [
        ("{not json", "not JSON"),
        ("[1]", "JSON object"),
        (json.dumps({"question": "", "context": "x"}), "question"),
        (json.dumps({"question": "q", "context": 3}), "context"),
        (json.dumps({"question": "q", "context": "x", "answers": "x"}), "answers"),
    ]:
        path.write_text(json.dumps({"question": "ok?", "context": "x"}) + "\n" + bad + "\n")
        with pytest.raises(ConfigError, match=rf"rows.jsonl:2: .*{message}"):
            load_rows(path)


def nq_file(tmp_path: Path) -> Path:
    path = tmp_path / "nq.jsonl.gz"
    facts = [
        ("when was the eiffel tower finished", "1889", "Eiffel Tower", "It was finished in 1889."),
        ("capital of australia", "Canberra", "Australia", "Its capital is Canberra."),
        ("who wrote hamlet", "Shakespeare", "Hamlet", "Hamlet is a play by Shakespeare."),
        ("tallest mountain", "Everest", "Mount Everest", "Everest is the tallest mountain."),
        ("the tower height", "330 metres", "Height", "It is 330 metres tall, built in 1889."),
    ]
    with gzip.open(path, "wt") as fh:
        for question, answer, title, text in facts:
            ctx = {"title": title, "text": text, "isgold": True}
            fh.write(json.dumps({"question": question, "answers": [answer], "ctxs": [ctx]}) + "\n")
    return path


def test_nq_rows_put_the_gold_passage_among_distractors_without_the_answer(
    tmp_path: Path,
) -> None:
    rows = nq_rows(nq_file(tmp_path), compressor(), limit=5, documents=3)
    assert len(rows) == 5
    for row in rows:
        assert isinstance(row.context, list) and len(row.context) == 3
        texts = [doc["text"] for doc in row.context]  # type: ignore[index]
        holding = [t for t in texts if names_gold(t, row.answers)]
        assert len(holding) == 1  # the gold passage; no distractor names the answer
    eiffel = next(r for r in rows if r.answers == ("1889",))
    assert "It is 330 metres tall, built in 1889." not in [d["text"] for d in eiffel.context]  # type: ignore[index]


def test_cli_against_an_openai_compatible_upstream(tmp_path: Path) -> None:
    fake = FakeOpenAI(lambda request, number: reader(context_of(request))).start()
    try:
        rows = tmp_path / "rows.jsonl"
        rows.write_text(
            "".join(
                json.dumps({"question": r.question, "context": r.context, "answers": r.answers})
                + "\n"
                for r in ROWS
            )
        )
        out = tmp_path / "out"
        result = CliRunner().invoke(
            app,
            [
                "bench",
                "compress",
                "-o",
                str(out),
                "--rows",
                str(rows),
                "--api-base",
                fake.base_url,
                "--model",
                "fake-model",
                "--embedder",
                "hashing",
                "--ratio",
                "0.4",
            ],
        )
    finally:
        fake.stop()
    assert result.exit_code == 0, result.output
    assert fake.calls["chat"] == 2 * len(ROWS)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 4 and summary["failed"] == 0 and summary["right_whole"] == 3
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["answer_whole"]
    assert "lost by compression" in result.output


def test_cli_needs_exactly_one_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "compress", "-o", str(tmp_path)])
    assert result.exit_code != 0 and "--rows" in result.output
    bad = tmp_path / "rows.jsonl"
    bad.write_text("{oops\n")
    result = CliRunner().invoke(
        app, ["bench", "compress", "-o", str(tmp_path), "--rows", str(bad), "--embedder", "hashing"]
    )
    assert result.exit_code != 0 and "rows.jsonl:1" in result.output
