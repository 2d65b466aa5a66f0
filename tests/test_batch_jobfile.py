"""The OpenAI Batch file format: every bad line reported with its number; output line shapes."""

from __future__ import annotations

import json

import pytest

from thrifty.batching.jobfile import output_line, parse_lines, read_jobfile, write_lines
from thrifty.errors import ConfigError, JobFileError


def line(custom_id: str = "a", **overrides: object) -> str:
    obj: dict[str, object] = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    }
    obj.update(overrides)
    return json.dumps(obj)


def test_valid_lines_parse_with_line_numbers() -> None:
    embed = line("e", url="/v1/embeddings", body={"model": "m", "input": "x"})
    requests = parse_lines([line("a"), "", embed])
    assert [(r.custom_id, r.line, r.endpoint) for r in requests] == [
        ("a", 1, "chat"),
        ("e", 3, "embeddings"),
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"custom_id": "x"}), "missing field(s): method, url, body"),
        (line(custom_id=""), "custom_id must be a non-empty string"),
        (line(method="GET"), "method must be 'POST'"),
        (line(url="/v1/responses"), "url '/v1/responses' is not supported"),
        (line(body=[]), "body must be a JSON object"),
        (line(body={"model": "m"}), "missing: messages"),
        (line(body={"model": "m", "messages": []}), "messages must be a non-empty list"),
        (line(body={"model": "", "messages": [{}]}), "body.model must be a non-empty string"),
        (line(body={"model": "m", "messages": [{}], "stream": True}), "stream must be false"),
    ],
)
def test_each_problem_is_named_with_its_line(bad: str, message: str) -> None:
    with pytest.raises(JobFileError) as info:
        parse_lines([line("ok"), bad])
    assert len(info.value.problems) == 1
    problem = info.value.problems[0]
    assert problem.line == 2
    assert message in problem.message
    assert f"line 2: {problem.message}" in str(info.value)
    assert isinstance(info.value, ConfigError)  # exit code 2 on the command line


def test_all_bad_lines_are_reported_at_once_including_duplicates() -> None:
    with pytest.raises(JobFileError) as info:
        parse_lines([line("a"), "{", line("a"), line("b", method="PUT")])
    assert [p.line for p in info.value.problems] == [2, 3, 4]
    assert "duplicate custom_id 'a' (first on line 1)" in info.value.problems[1].message


def test_empty_and_missing_files_are_clear_errors(tmp_path) -> None:
    with pytest.raises(JobFileError, match="no requests"):
        parse_lines(["", "  "])
    with pytest.raises(JobFileError, match="cannot read the file"):
        read_jobfile(tmp_path / "nope.jsonl")


def test_output_and_error_lines_have_openai_batch_shape(tmp_path) -> None:
    ok = output_line("a", status_code=200, body={"id": "x"})
    assert set(ok) == {"id", "custom_id", "response", "error"}
    assert ok["id"].startswith("batch_req_")
    assert ok["error"] is None
    assert ok["response"]["status_code"] == 200 and ok["response"]["body"] == {"id": "x"}
    assert ok["response"]["request_id"]
    err = output_line("b", status_code=None, body=None, error={"code": "c", "message": "m"})
    assert err["response"] is None and err["error"] == {"code": "c", "message": "m"}
    path = tmp_path / "sub" / "out.jsonl"
    assert write_lines(path, [ok, err]) == 2
    assert [json.loads(x)["custom_id"] for x in path.read_text().splitlines()] == ["a", "b"]
