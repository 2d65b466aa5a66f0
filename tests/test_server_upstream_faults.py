"""Upstream faults (issue 12, items 2 and 3): a stream that stalls or breaks counts as a failure
of its deployment and cools it; before its first chunk the next deployment answers; and no
request sleeps out a cooldown while a healthy fallback can answer.

``bad`` serves ``gpt-4o-mini`` and ``good`` serves ``backup``, its fallback; both are FAKE
upstreams, in-process unless a test needs sockets (what a reset or a stall looks like on the
wire, through the real HTTP provider).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from _gateway import fake_config, gateway, web
from thrifty.server.config import parse_config
from thrifty.server.upstreams import build_pool
from thrifty.testing.fake_openai import FakeOpenAI
from thrifty.testing.inprocess import InProcessOpenAI

HI = [{"role": "user", "content": "tell me four words"}]
#: Every streamed request asks something new: none is answered by the cache or a shared stream.
QUESTIONS = (f"tell me four words, take {n}" for n in itertools.count())


@contextmanager
def bad_and_good(**router: Any) -> Iterator[tuple[str, FakeOpenAI, FakeOpenAI, Any]]:
    """The gateway with ``gpt-4o-mini`` on ``bad`` falling back to ``backup`` on ``good``;
    ``over_sockets=True`` reaches them through the HTTP provider instead of in-process.
    Yields the gateway's URL, the two fakes and its deployment pool."""
    over_sockets = router.pop("over_sockets", False)
    settings = {
        "num_retries": 1,
        "retry_base_delay": 0,
        "timeout": 10,
        "allowed_fails": 1,
        "cooldown_time": 30,
        "stream_timeout": 0.3,
        "fallbacks": [{"gpt-4o-mini": ["backup"]}],
        **router,
    }
    with FakeOpenAI() as bad, FakeOpenAI() as good:
        data = fake_config(bad.base_url, router_settings=settings).model_dump()
        data["model_list"][1]["litellm_params"]["api_base"] = good.base_url
        options: dict[str, Any] = (
            {"connect": (lambda params, timeout: None)} if over_sockets else {}
        )
        with gateway(parse_config(data), **options) as (url, app):
            yield url, bad, good, app.state.gateway.pool


def stream(url: str) -> httpx.Response:
    """A new streamed chat request, read whole (its SSE events are in ``.text``)."""
    messages = [{"role": "user", "content": next(QUESTIONS)}]
    body = {"model": "gpt-4o-mini", "messages": messages, "stream": True}
    return web.post(f"{url}/v1/chat/completions", json=body)


def set_fault(fake: FakeOpenAI, fault: str, position: int) -> None:
    setattr(fake, {"stall": "stream_stall_after", "reset": "stream_reset_after",
                   "error": "stream_error_after"}[fault], position)  # fmt: skip


def assert_complete(response: httpx.Response, route: str) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["x-thrifty-route"] == route
    assert response.text.rstrip().endswith("data: [DONE]")
    assert '"error"' not in response.text


@pytest.mark.parametrize("fault", ["stall", "reset"])
def test_a_stream_failing_before_its_first_chunk_is_answered_by_the_fallback(fault: str) -> None:
    with bad_and_good() as (url, bad, good, _):
        set_fault(bad, fault, 0)
        started = time.perf_counter()
        response = stream(url)
        seconds = time.perf_counter() - started
    assert_complete(response, "backup#0")
    assert bad.calls["chat"] == 2 and good.calls["chat"] == 1  # a1, its retry, then backup
    assert seconds < 3.0  # two 0.3 s stalls at most, no cooldown slept


@pytest.mark.parametrize("fault", ["stall", "reset", "error"])
def test_a_stream_failing_mid_way_cools_its_deployment(fault: str) -> None:
    """The client of a broken stream gets an SSE error event; two such failures (> the
    allowed one) cool ``bad``, and the streams after that go to the fallback."""
    with bad_and_good() as (url, bad, good, pool):
        set_fault(bad, fault, 2)
        for _ in range(2):
            broken = stream(url)
            assert broken.status_code == 200 and broken.headers["x-thrifty-route"] == (
                "gpt-4o-mini#0"
            )
            assert '"code":"upstream_error"' in broken.text
            assert "data: [DONE]" not in broken.text
        calls = bad.calls["chat"]
        for _ in range(3):
            assert_complete(stream(url), "backup#0")
        plain = web.post(
            f"{url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": HI},
        )
        health = {d["id"]: d for d in pool.health()}
    assert bad.calls["chat"] == calls  # cooled: not even tried
    assert good.calls["chat"] == 4
    assert plain.headers["x-thrifty-route"] == "backup#0"
    assert health["gpt-4o-mini#0"]["cooldown_seconds"] > 20


def test_a_stream_that_keeps_its_chunks_coming_is_not_cut() -> None:
    """The timeout is between chunks, not over the whole stream."""
    with bad_and_good(stream_timeout=0.2) as (url, bad, good, _):
        bad.chunk_delay = 0.05  # every gap well within the limit, the whole stream beyond it
        response = stream(url)
    assert_complete(response, "gpt-4o-mini#0")
    assert good.calls["chat"] == 0


def test_the_request_that_cools_a_deployment_does_not_sleep_out_the_cooldown() -> None:
    """Issue 12, item 3: ``bad`` fails twice (> allowed_fails=1), is cooled for 30 s, and the
    same request is answered by the fallback at once."""
    with bad_and_good(num_retries=2) as (url, bad, good, _):
        bad.fail_next(times=2, status=500)
        started = time.perf_counter()
        response = web.post(
            f"{url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI}
        )
        seconds = time.perf_counter() - started
    assert response.status_code == 200 and response.headers["x-thrifty-route"] == "backup#0"
    assert bad.calls["chat"] == 2 and good.calls["chat"] == 1
    assert seconds < 3.0


@pytest.mark.parametrize("fault", ["stall", "reset"])
def test_faults_on_the_wire_cool_the_deployment(fault: str) -> None:
    """Over loopback through the HTTP provider: a TCP reset or a silent connection mid-stream
    ends the client's stream with an error event and cools the deployment."""
    with bad_and_good(over_sockets=True) as (url, bad, good, pool):
        set_fault(bad, fault, 2)
        for _ in range(2):
            broken = stream(url)
            assert '"code":"upstream_error"' in broken.text
        assert_complete(stream(url), "backup#0")
        health = {d["id"]: d for d in pool.health()}
    assert bad.calls["chat"] == 2 and good.calls["chat"] == 1
    assert health["gpt-4o-mini#0"]["cooldown_seconds"] > 20


def test_stream_timeout_is_per_deployment_and_off_for_local_models() -> None:
    config = parse_config(
        {
            "model_list": [
                {"model_name": "own", "litellm_params": {"model": "openai/a",
                                                         "stream_timeout": 5}},
                {"model_name": "http", "litellm_params": {"model": "openai/b"}},
                {"model_name": "local", "litellm_params": {"model": "thrifty/local"}},
            ],
            "router_settings": {"stream_timeout": 20},
        }
    )  # fmt: skip
    with FakeOpenAI() as fake:  # every deployment in-process: nothing is loaded or dialled
        pool, _ = build_pool(config, connect=lambda params, timeout: InProcessOpenAI(
            fake, None, params.model))  # fmt: skip
    limits = {name: pool.deployments(name)[0].stream_timeout for name in pool.models()}
    assert limits == {"own": 5.0, "http": 20.0, "local": None}
    default = parse_config({"model_list": [{"model_name": "m", "model": "openai/m"}]})
    assert default.router_settings.stream_timeout == 60.0
