"""Per-request cache control, tenant isolation, temperature policy, coalescing, disconnects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import httpx

from _gateway import fake_config, gateway, served_over_sockets, web
from thrifty.testing.fake_openai import FakeOpenAI

HI = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def post(url: str, body: dict = HI, **headers: str) -> httpx.Response:
    response = web.post(
        f"{url}/v1/chat/completions",
        json=body,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )
    assert response.status_code == 200, response.text
    return response


def status(response: httpx.Response) -> str:
    return response.headers["x-thrifty-cache-status"]


def test_modes(served: str, fake: FakeOpenAI) -> None:
    assert status(post(served, X_Thrifty_Cache="no-store")) == "MISS"
    assert status(post(served, X_Thrifty_Cache="no-store")) == "MISS"  # nothing was stored
    assert status(post(served)) == "MISS"
    assert status(post(served)) == "HIT"
    assert status(post(served, X_Thrifty_Cache="no-store")) == "HIT"  # reads still allowed
    assert status(post(served, X_Thrifty_Cache="no-cache")) == "BYPASS"
    refreshed = post(served, X_Thrifty_Cache="refresh")
    assert status(refreshed) == "REFRESH"
    after = post(served)
    assert status(after) == "HIT"
    assert (
        after.json()["choices"][0]["message"]["content"]
        == refreshed.json()["choices"][0]["message"]["content"]
        == "Reply 5: hi"
    )
    assert fake.calls["chat"] == 5


def test_body_field_controls_like_the_header(served: str, fake: FakeOpenAI) -> None:
    post(served)
    bypass = post(served, {**HI, "thrifty": {"cache": "no-cache"}})
    assert status(bypass) == "BYPASS"
    assert "thrifty" not in fake.requests[-1]  # never forwarded upstream


def test_namespaces_are_isolated(served: str, fake: FakeOpenAI) -> None:
    post(served)
    assert status(post(served, X_Thrifty_Namespace="support")) == "MISS"
    assert status(post(served, X_Thrifty_Namespace="support")) == "HIT"
    assert status(post(served, {**HI, "thrifty": {"namespace": "support"}})) == "HIT"
    assert fake.calls["chat"] == 2


def test_ttl_header_expires_the_entry(served: str) -> None:
    post(served, X_Thrifty_TTL="0.3")
    assert status(post(served)) == "HIT"
    time.sleep(0.4)
    assert status(post(served)) == "MISS"


def test_temperature_above_zero_needs_opt_in(served: str, fake: FakeOpenAI) -> None:
    warm = {**HI, "temperature": 0.7}
    assert status(post(served, warm)) == "BYPASS"
    assert status(post(served, warm)) == "BYPASS"
    assert status(post(served, warm, X_Thrifty_Cache_Temperature="true")) == "MISS"
    assert status(post(served, warm, X_Thrifty_Cache_Temperature="true")) == "HIT"
    cold = {**HI, "temperature": 0}
    assert status(post(served, cold)) == "MISS"
    assert status(post(served, cold)) == "HIT"
    assert fake.calls["chat"] == 4


def test_config_opt_in_caches_temperature(fake: FakeOpenAI) -> None:
    config = fake_config(fake.base_url, cache={"url": "memory://", "cache_temperature": True})
    with gateway(config) as (url, _):
        post(url, {**HI, "temperature": 0.9})
        assert status(post(url, {**HI, "temperature": 0.9})) == "HIT"


def test_cache_disabled_in_config_bypasses(fake: FakeOpenAI) -> None:
    config = fake_config(fake.base_url, cache={"url": "memory://", "enabled": False})
    with gateway(config) as (url, _):
        post(url)
        assert status(post(url)) == "BYPASS"
    assert fake.calls["chat"] == 2


async def test_identical_concurrent_requests_are_coalesced() -> None:
    with FakeOpenAI(delay=0.3) as slow, served_over_sockets(fake_config(slow.base_url)) as (url, _):
        async with httpx.AsyncClient(timeout=10) as http:
            answers = await asyncio.gather(
                *(http.post(f"{url}/v1/chat/completions", json=HI) for _ in range(5))
            )
        assert slow.calls["chat"] == 1
        statuses = sorted(status(a) for a in answers)
        assert statuses == ["HIT", "HIT", "HIT", "HIT", "MISS"]
        assert len({a.json()["choices"][0]["message"]["content"] for a in answers}) == 1
        metrics = web.get(f"{url}/metrics").text
        assert 'result="coalesced"} 4.0' in metrics


def test_client_disconnect_mid_stream_closes_the_upstream(fake: FakeOpenAI) -> None:
    fake.chunk_delay = 0.05
    long = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": " ".join(["word"] * 60)}],
    }
    with served_over_sockets(fake_config(fake.base_url)) as (url, _):  # a real hang-up
        with web.stream("POST", f"{url}/v1/chat/completions", json=long) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
        # The client hung up after one chunk; the gateway must hang up on the upstream.
        deadline = time.monotonic() + 5
        while fake.streams_abandoned == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.streams_abandoned == 1
        # An interrupted stream is never stored.
        fake.chunk_delay = 0.0
        again = web.post(f"{url}/v1/chat/completions", json={**long, "stream": False})
        assert status(again) == "MISS"


LONG_STREAM = {
    "model": "gpt-4o-mini",
    "stream": True,
    "messages": [{"role": "user", "content": " ".join(["word"] * 30)}],
}


async def _read_stream(
    http: httpx.AsyncClient, url: str, *, after: float = 0.0, hang_up_after: int | None = None
) -> tuple[str, str, bool]:
    """(cache status, streamed text, whether it ended with [DONE])."""
    await asyncio.sleep(after)
    text, done = "", False
    async with http.stream("POST", f"{url}/v1/chat/completions", json=LONG_STREAM) as response:
        assert response.status_code == 200
        events = 0
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                break
            chunk = json.loads(line[6:])
            text += "".join(c["delta"].get("content") or "" for c in chunk["choices"])
            events += 1
            if hang_up_after is not None and events >= hang_up_after:
                break
        return response.headers["x-thrifty-cache-status"], text, done


@contextlib.asynccontextmanager
async def streaming_gateway(fake: FakeOpenAI) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """The default gateway before a FAKE upstream that streams a chunk every 20 ms (so that
    requests overlap), and a client."""
    fake.chunk_delay = 0.02
    with served_over_sockets(fake_config(fake.base_url)) as (url, _):  # streams over the wire
        async with httpx.AsyncClient(timeout=10) as http:
            yield url, http


async def test_identical_concurrent_streams_share_one_upstream_stream(fake: FakeOpenAI) -> None:
    async with streaming_gateway(fake) as (url, http):
        results = await asyncio.gather(
            _read_stream(http, url),
            *(_read_stream(http, url, after=0.1 + 0.05 * i) for i in range(3)),
        )
        assert fake.calls["chat"] == 1
        assert sorted(r[0] for r in results) == ["HIT", "HIT", "HIT", "MISS"]
        texts = {r[1] for r in results}
        assert len(texts) == 1 and texts.pop().endswith("word")  # latecomers got it all
        assert all(r[2] for r in results)
        metrics = web.get(f"{url}/metrics").text
        assert 'result="coalesced"} 3.0' in metrics
        assert status(post(url, {**LONG_STREAM, "stream": False})) == "HIT"  # stored once


async def test_a_shared_stream_goes_on_for_the_others_when_one_client_hangs_up(
    fake: FakeOpenAI,
) -> None:
    async with streaming_gateway(fake) as (url, http):
        first, second = await asyncio.gather(
            _read_stream(http, url, hang_up_after=10),  # the one that started it leaves
            _read_stream(http, url, after=0.05),
        )
        assert first[0] == "MISS" and not first[2]
        assert second[0] == "HIT" and second[2] and second[1].endswith("word")
        assert fake.calls["chat"] == 1
        assert fake.streams_abandoned == 0  # someone was still listening
        assert status(post(url, {**LONG_STREAM, "stream": False})) == "HIT"


async def test_a_plain_request_waits_for_the_same_answer_being_streamed(
    fake: FakeOpenAI,
) -> None:
    async with streaming_gateway(fake) as (url, http):

        async def plain() -> httpx.Response:
            await asyncio.sleep(0.1)
            return await http.post(
                f"{url}/v1/chat/completions", json={**LONG_STREAM, "stream": False}
            )

        streamed, answer = await asyncio.gather(_read_stream(http, url), plain())
        assert fake.calls["chat"] == 1
        assert status(answer) == "HIT"
        assert answer.json()["choices"][0]["message"]["content"] == streamed[1]
