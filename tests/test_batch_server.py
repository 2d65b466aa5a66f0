"""OpenAI SDK batch code against the gateway: files.create, batches.create/retrieve/list/cancel,
files.content (upstream: RateLimitedFakeOpenAI, a FAKE server)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from _gateway import fake_config, gateway, sdk
from thrifty.testing.fake_limited import RateLimitedFakeOpenAI


@pytest.fixture
def fake() -> Iterator[RateLimitedFakeOpenAI]:
    with RateLimitedFakeOpenAI() as server:
        yield server


@pytest.fixture
def client(fake, tmp_path, monkeypatch) -> Iterator[openai.OpenAI]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("THRIFTY_BATCH_DIR", str(tmp_path / "batches"))
    config = fake_config(fake.base_url, keys=[
        {"key": "sk-team-a", "tenant": "team-a"}, {"key": "sk-team-b", "tenant": "team-b"},
    ])  # fmt: skip
    with gateway(config) as (url, _app):
        yield sdk(url, "sk-team-a")


def job(prompts: list[str], url: str = "/v1/chat/completions") -> bytes:
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": url,
         "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": p}]}}
        for i, p in enumerate(prompts)
    ]  # fmt: skip
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def wait(client: openai.OpenAI, batch_id: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


def test_sdk_batch_flow_runs_unchanged(client: openai.OpenAI, fake) -> None:  # type: ignore[no-untyped-def]
    fake.fail("broken", [400])
    uploaded = client.files.create(
        file=("in.jsonl", io.BytesIO(job(["a", "b", "a", "broken"]))), purpose="batch"
    )
    assert uploaded.id.startswith("file-") and uploaded.purpose == "batch"
    assert client.files.content(uploaded.id).content == job(["a", "b", "a", "broken"])
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "test"},
    )
    assert batch.status in ("validating", "in_progress")
    done = wait(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts.total == 4
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 1)
    assert done.metadata == {"job": "test"}
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert [o["custom_id"] for o in out] == ["r0", "r1", "r2"]
    assert out[0]["response"]["body"] == out[2]["response"]["body"]  # answered once
    assert dict(fake.calls_by_prompt) == {"a": 1, "b": 1, "broken": 1}
    errors = client.files.content(done.error_file_id).text.splitlines()
    assert [json.loads(e)["custom_id"] for e in errors] == ["r3"]
    assert [b.id for b in client.batches.list()] == [batch.id]


def test_invalid_input_fails_the_batch_with_line_errors(client: openai.OpenAI) -> None:
    data = job(["a"]) + b"not json\n" + job(["b"], url="/v1/embeddings")
    uploaded = client.files.create(file=("bad.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait(client, batch.id)
    assert done.status == "failed"
    assert done.errors is not None
    assert [e.line for e in done.errors.data] == [2, 3]
    assert "not valid JSON" in (done.errors.data[0].message or "")
    assert "missing: input" in (done.errors.data[1].message or "")


def test_lines_for_another_endpoint_fail_the_batch(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(job(["a"]))), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/completions", completion_window="24h"
    )
    done = wait(client, batch.id)
    assert done.status == "failed" and done.errors is not None
    assert "differs from the batch endpoint" in (done.errors.data[0].message or "")


def test_bad_requests_get_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("x.jsonl", io.BytesIO(b"{}")), purpose="fine-tune")
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(job(["a"]))), purpose="batch")
    with pytest.raises(openai.BadRequestError):
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


def test_tenants_do_not_see_each_others_files(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(job(["a"]))), purpose="batch")
    other = client.with_options(api_key="sk-team-b")
    with pytest.raises(openai.NotFoundError):
        other.files.content(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        other.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )


def start_and_wait_for_progress(client: openai.OpenAI) -> Any:
    """A 40-request batch, once at least 8 of its requests are done (the rest still running)."""
    uploaded = client.files.create(
        file=("in.jsonl", io.BytesIO(job([f"q{i}" for i in range(40)]))), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 20
    while client.batches.retrieve(batch.id).request_counts.completed < 8:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return batch


def test_cancel_keeps_partial_results(client: openai.OpenAI, fake) -> None:  # type: ignore[no-untyped-def]
    fake.latency = 0.3
    batch = start_and_wait_for_progress(client)
    client.batches.cancel(batch.id)
    done = wait(client, batch.id)
    assert done.status == "cancelled"
    out = client.files.content(done.output_file_id).text.splitlines()
    assert 8 <= len(out) < 40


def test_a_restarted_gateway_resumes_unfinished_batches(fake, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("THRIFTY_BATCH_DIR", str(tmp_path / "batches"))
    config = fake_config(fake.base_url, cache={"url": f"sqlite:///{tmp_path / 'cache.db'}"})
    fake.latency = 0.3
    with gateway(config) as (url, _app):
        client = sdk(url, "k")
        batch = start_and_wait_for_progress(client)
    # the gateway stopped mid-batch; a new one adopts it
    with gateway(config) as (url, _app):
        client = sdk(url, "k")
        done = wait(client, batch.id)
        assert done.status == "completed", done
        assert done.request_counts.completed == 40
        out = client.files.content(done.output_file_id).text.splitlines()
    assert sorted(json.loads(x)["custom_id"] for x in out) == sorted(f"r{i}" for i in range(40))
    # Nothing received is paid twice. Requests still in flight when the first gateway stopped
    # may be sent again (the documented resume contract): at most one per concurrent slot.
    from thrifty.server.batches import MAX_CONCURRENCY

    resent = sum(fake.answered_by_prompt.values()) - 40
    assert 0 <= resent <= MAX_CONCURRENCY
    assert set(fake.answered_by_prompt) == {f"q{i}" for i in range(40)}


def test_batch_lines_are_held_to_the_keys_budget(fake, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("THRIFTY_BATCH_DIR", str(tmp_path / "batches"))
    keys = [{"key": "sk-broke", "tenant": "t", "max_budget_usd": 0}]
    with gateway(fake_config(fake.base_url, keys=keys)) as (url, _app):
        client = sdk(url, "sk-broke")
        uploaded = client.files.create(
            file=("in.jsonl", io.BytesIO(job(["a", "b"]))), purpose="batch"
        )
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = wait(client, batch.id)
        assert done.status == "completed"
        assert (done.request_counts.completed, done.request_counts.failed) == (0, 2)
        errors = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert {e["error"]["code"] for e in errors} == {"budget_exceeded"}
    assert {e["response"]["status_code"] for e in errors} == {429}
    assert fake.admitted == 0  # refused before any upstream call, and not retried
