"""The batch engine against a local fake upstream (RateLimitedFakeOpenAI, a FAKE server):
retries on 429 (honouring Retry-After) and 5xx, partial failures, rate limits, deduplication."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from thrifty import Cache
from thrifty.batching import BatchSettings, JobPaths, parse_lines, run_job
from thrifty.batching.engine import single_provider
from thrifty.providers.openai_compat import OpenAICompatProvider
from thrifty.retry import RetryPolicy
from thrifty.testing.fake_limited import RateLimitedFakeOpenAI

FAST_RETRY = RetryPolicy(num_retries=4, base_delay=0.01, max_delay=0.05)


def job(prompts: list[str], ids: list[str] | None = None) -> list[str]:
    ids = ids or [f"r{i}" for i in range(len(prompts))]
    return [
        json.dumps(
            {
                "custom_id": cid,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": p}]},
            }
        )
        for cid, p in zip(ids, prompts, strict=True)
    ]


@pytest.fixture
def fake() -> RateLimitedFakeOpenAI:
    with RateLimitedFakeOpenAI() as server:
        yield server


@pytest.fixture
async def provider(fake: RateLimitedFakeOpenAI) -> AsyncIterator[OpenAICompatProvider]:
    p = OpenAICompatProvider(fake.base_url, "test-key")
    yield p
    await p.aclose()


def lines_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def run(tmp_path, provider, lines, settings=None, resume=False, cache=None):  # type: ignore[no-untyped-def]
    paths = JobPaths.beside(tmp_path / "out.jsonl")
    cache = cache or Cache(f"sqlite:///{tmp_path / 'cache.db'}")
    summary = await run_job(
        parse_lines(lines),
        paths,
        resolve=single_provider(provider),
        cache=cache,
        settings=settings or BatchSettings(max_concurrency=4, retry=FAST_RETRY),
        resume=resume,
    )
    return summary, lines_of(paths.output), lines_of(paths.errors)


async def test_success_retries_and_output_in_input_order(tmp_path, fake, provider) -> None:
    fake.fail("p1", [500, 503])
    fake.fail("p2", [429])
    summary, out, errors = await run(tmp_path, provider, job([f"p{i}" for i in range(6)]))
    assert [o["custom_id"] for o in out] == [f"r{i}" for i in range(6)]
    assert errors == []
    assert all(o["response"]["status_code"] == 200 and o["error"] is None for o in out)
    assert out[1]["response"]["body"]["choices"][0]["message"]["content"].endswith("p1")
    assert (summary.ok, summary.failed, summary.retries) == (6, 0, 3)
    assert summary.upstream_calls == 9 and summary.rate_limited == 1
    assert summary.tokens_in > 0 and summary.cost_usd > 0


async def test_429_retry_after_is_waited_for(tmp_path, fake, provider) -> None:
    fake.set_rpm(60)  # one request per wall-clock second
    started = time.monotonic()
    settings = BatchSettings(max_concurrency=4, retry=FAST_RETRY)  # no client-side rpm
    summary, out, _ = await run(tmp_path, provider, job(["a", "b", "c"]), settings)
    elapsed = time.monotonic() - started
    assert len(out) == 3 and summary.ok == 3
    assert summary.rate_limited >= 2
    # three windows are needed; retries with 0.05 s backoff alone would have given up
    assert 1.0 < elapsed < 4.0
    assert fake.admitted == 3


async def test_partial_failures_go_to_the_errors_file(tmp_path, fake, provider) -> None:
    fake.fail("bad", [400])
    fake.fail("down", [500] * 10)
    summary, out, errors = await run(tmp_path, provider, job(["ok1", "bad", "down", "ok2"]))
    assert [o["custom_id"] for o in out] == ["r0", "r3"]
    assert summary.ok == 2 and summary.failed == 2
    by_id = {e["custom_id"]: e for e in errors}
    assert set(by_id) == {"r1", "r2"}
    assert by_id["r1"]["response"]["status_code"] == 400
    assert by_id["r1"]["error"]["message"] == "fake failure 400"
    assert fake.calls_by_prompt["bad"] == 1  # a client error is not retried
    assert by_id["r2"]["response"]["status_code"] == 500
    assert fake.calls_by_prompt["down"] == 1 + FAST_RETRY.num_retries
    assert set(by_id["r2"]["error"]) == {"code", "message"}


async def test_identical_bodies_are_answered_once(tmp_path, fake, provider) -> None:
    prompts = ["same", "same", "other", "same", "other"]
    summary, out, _ = await run(tmp_path, provider, job(prompts))
    assert len(out) == 5
    assert dict(fake.calls_by_prompt) == {"same": 1, "other": 1}
    assert summary.deduplicated == 3 and summary.upstream_calls == 2
    texts = {o["response"]["body"]["choices"][0]["message"]["content"] for o in out}
    assert len(texts) == 2
    assert summary.saved_usd > 0


async def test_rpm_is_respected_without_429s(tmp_path, fake, provider) -> None:
    fake.set_rpm(600)  # 10 per wall-clock second
    settings = BatchSettings(max_concurrency=16, rpm=600, retry=FAST_RETRY)
    started = time.monotonic()
    summary, out, _ = await run(tmp_path, provider, job([f"q{i}" for i in range(25)]), settings)
    elapsed = time.monotonic() - started
    assert len(out) == 25
    assert summary.rate_limited <= 1
    assert 2.3 < elapsed < 4.0  # 25 requests at 10/s
    windows: dict[int, int] = {}
    for t in fake.admit_times:
        windows[int(t)] = windows.get(int(t), 0) + 1
    assert max(windows.values()) <= 10


async def test_tpm_is_respected(tmp_path, fake, provider) -> None:
    # each request: ~9 prompt + ~6 output tokens; 1,800 tpm = 30 tokens/s -> ~2 requests/s
    settings = BatchSettings(max_concurrency=8, tpm=1800, retry=FAST_RETRY)
    started = time.monotonic()
    summary, out, _ = await run(tmp_path, provider, job([f"t{i}" for i in range(8)]), settings)
    elapsed = time.monotonic() - started
    assert len(out) == 8
    spent = summary.tokens_in + summary.tokens_out
    # a second's worth (30 tokens) may go at once, the rest at 30 tokens per second
    assert elapsed >= (spent - 30 - 15) / 30


async def test_resume_skips_finished_lines(tmp_path, fake, provider) -> None:
    lines = job(["a", "b", "c"])
    await run(tmp_path, provider, lines)
    summary, out, _ = await run(tmp_path, provider, lines, resume=True)
    assert summary.skipped == 3 and summary.upstream_calls == 0
    assert len(out) == 3
    assert fake.admitted == 3


async def test_resume_retries_failed_lines_and_changed_bodies(tmp_path, fake, provider) -> None:
    fake.fail("flaky", [400])
    await run(tmp_path, provider, job(["flaky", "b"]))
    lines = job(["flaky", "b2"])  # r1's body changed since the first run
    summary, out, errors = await run(tmp_path, provider, lines, resume=True)
    assert summary.skipped == 0 and summary.ok == 2
    assert errors == [] and [o["custom_id"] for o in out] == ["r0", "r1"]


async def test_answers_come_from_the_cache_on_a_fresh_run(tmp_path, fake, provider) -> None:
    lines = job(["a", "b"])
    await run(tmp_path, provider, lines)
    summary, out, _ = await run(tmp_path, provider, lines)  # not --resume: journal reset
    assert summary.cached == 2 and summary.upstream_calls == 0
    assert len(out) == 2 and fake.admitted == 2


async def test_model_map_renames_before_sending(tmp_path, fake, provider) -> None:
    settings = BatchSettings(model_map={"gpt-4o-mini": "local-small"}, retry=FAST_RETRY)
    _, out, _ = await run(tmp_path, provider, job(["a"]), settings)
    assert out[0]["response"]["body"]["model"] == "local-small"


async def test_unknown_model_is_an_error_line(tmp_path, fake, provider) -> None:
    from thrifty.batching import ProviderSet

    lines = job(["a", "b"])
    lines[1] = lines[1].replace('"gpt-4o-mini"', '"no-such-model"')
    paths = JobPaths.beside(tmp_path / "out.jsonl")
    summary = await run_job(
        parse_lines(lines),
        paths,
        resolve=ProviderSet({"gpt-4o-mini": lambda: provider}),
        cache=Cache("memory://"),
        settings=BatchSettings(retry=FAST_RETRY),
    )
    assert summary.ok == 1 and summary.failed == 1
    (error,) = lines_of(paths.errors)
    assert error["custom_id"] == "r1" and error["response"] is None
    assert error["error"]["code"] == "model_not_found"
    assert "no-such-model" in error["error"]["message"]
