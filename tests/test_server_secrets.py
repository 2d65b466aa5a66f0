"""No secret leaves the gateway: every error path's output is searched for a known password.

Backend URLs carry passwords and upstream URLs name internal hosts (and may carry credentials
too); readiness has no auth, startup errors reach CI logs, and error bodies reach every client.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _gateway import fake_config, gateway, web
from test_store_outage import SECRET, redis_with_password  # noqa: F401  (a fixture)
from thrifty.cli import app as cli
from thrifty.server.config import parse_config
from thrifty.testing.fake_openai import FakeOpenAI
from thrifty.testing.tcp_proxy import TcpProxy

HI = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (the upstream hangs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def upstream_config(api_base: str, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    return parse_config(
        {
            "model_list": [{"model_name": "gpt-4o-mini", "litellm_params": {
                "model": "openai/gpt-4o-mini", "api_base": api_base, "api_key": SECRET}}],
            "router_settings": {"num_retries": 0, "timeout": timeout, "stream_timeout": timeout},
            "cache": {"url": "memory://"},
        },
        source="t.yaml",
    )  # fmt: skip


def assert_hidden(text: str, *internal: str) -> None:
    assert SECRET not in text, text
    for detail in internal:
        assert detail not in text, text


def test_unreachable_upstream_502_shows_no_url_or_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = closed_port()
    config = upstream_config(f"http://127.0.0.1:{port}/v1")
    with gateway(config, connect=None) as (url, _):
        plain = web.post(f"{url}/v1/chat/completions", json=HI)
        streamed = web.post(f"{url}/v1/chat/completions", json={**HI, "stream": True})
        embeddings = web.post(f"{url}/v1/embeddings", json={"model": "gpt-4o-mini", "input": "x"})
        metrics = web.get(f"{url}/metrics").text
    for response in (plain, embeddings):
        assert response.status_code == 502, response.text
        assert "gpt-4o-mini" in response.json()["error"]["message"]
    assert streamed.status_code in (200, 502)
    for text in (plain.text, streamed.text, embeddings.text, metrics):
        assert_hidden(text, f"127.0.0.1:{port}", "http://")
    assert_hidden(caplog.text)


def test_stream_broken_mid_way_shows_no_url(fake: FakeOpenAI) -> None:
    config = fake_config(fake.base_url, router_settings={"num_retries": 0})
    fake.stream_reset_after = 2
    with gateway(config, connect=None) as (url, _):
        response = web.post(f"{url}/v1/chat/completions", json={**HI, "stream": True})
    assert response.status_code == 200 and '"error"' in response.text, response.text
    assert_hidden(response.text, fake.base_url, "http://")


def test_hung_upstream_504_shows_no_url(silent_port: int) -> None:
    config = upstream_config(f"http://localhost:{silent_port}/v1", timeout=0.3)
    with gateway(config, connect=None) as (url, _):
        response = web.post(f"{url}/v1/chat/completions", json=HI)
    assert response.status_code == 504, response.text
    assert_hidden(response.text, f"localhost:{silent_port}", "http://")


def test_upstream_error_status_passes_its_message_without_urls(fake: FakeOpenAI) -> None:
    with gateway(fake_config(fake.base_url, router_settings={"num_retries": 0})) as (url, _):
        fake.fail_next(2, status=500)
        response = web.post(f"{url}/v1/chat/completions", json=HI)
    assert response.status_code == 502
    assert_hidden(response.text, fake.base_url)


@pytest.mark.redis
def test_readiness_and_answers_hide_the_redis_password(
    redis_with_password: int,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    fake: FakeOpenAI,
) -> None:
    caplog.set_level(logging.DEBUG)
    with TcpProxy("127.0.0.1", redis_with_password) as proxy:
        cache_url = f"redis://:{SECRET}@127.0.0.1:{proxy.port}/0?prefix=t-secrets:"
        config = fake_config(fake.base_url, cache={"url": cache_url})
        with gateway(config) as (url, _):
            assert web.get(f"{url}/health/readiness").status_code == 200
            proxy.stop()
            ready = web.get(f"{url}/health/readiness")
            answer = web.post(f"{url}/v1/chat/completions", json=HI)  # a cache fault: a miss
            metrics = web.get(f"{url}/metrics").text
    assert ready.status_code == 503 and "***" in ready.text
    assert answer.status_code == 200
    for text in (ready.text, answer.text, str(answer.headers), metrics, caplog.text):
        assert_hidden(text)


@pytest.mark.parametrize(
    "cache_url",
    [
        f"redis://:{SECRET}@127.0.0.1:1/0",
        f"redis://:{SECRET}@127.0.0.1:notaport/0",
        f"postgresql://u:{SECRET}@127.0.0.1:1/db",
        f"postgresql://u:{SECRET}@127.0.0.1:99999/db",
        f"mongodb://u:{SECRET}@h/x",
        f"redis://:{SECRET}@127.0.0.1:6379/0?socket_timeout=abc",
    ],
)
def test_startup_errors_hide_the_password(tmp_path: Path, cache_url: str) -> None:
    path = tmp_path / "thrifty.yaml"
    path.write_text(f'cache: {{url: "{cache_url}"}}\n')
    result = CliRunner().invoke(cli, ["serve", "--config", str(path), "--port", "1"])
    assert result.exit_code in (1, 2), result.output
    assert "error" in result.output
    assert_hidden(result.output + repr(result.exception))


def test_credentials_in_an_upstream_url_are_refused_at_load() -> None:
    """They made every call a 500 (aiohttp refuses them beside the bearer header)."""
    from thrifty.errors import ConfigError

    with pytest.raises(ConfigError, match="api_base") as refused:
        upstream_config(f"http://admin:{SECRET}@127.0.0.1:1/v1")
    assert_hidden(str(refused.value))
