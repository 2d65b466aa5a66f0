"""Bad input never reaches code that could fail on it: depth, size, upload and TTL limits answer
4xx with OpenAI error bodies, and a client that goes away is neither an error nor a 500."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette

from _gateway import fake_config, gateway, served_over_sockets, web
from thrifty.cache import Cache
from thrifty.errors import ConfigError
from thrifty.json_limits import json_depth
from thrifty.policy import MAX_TTL
from thrifty.server.config import parse_config
from thrifty.testing.fake_openai import FakeOpenAI

HI = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def app(fake: FakeOpenAI) -> Iterator[tuple[str, Starlette]]:
    config = fake_config(fake.base_url, server={"max_upload_bytes": 4096})
    with gateway(config) as served:
        yield served


def nested(depth: int) -> bytes:
    return b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "x": ' + (
        b"[" * depth + b"]" * depth + b"}"
    )


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code
    return error


def test_json_depth_counts_without_recursion() -> None:
    assert json_depth(1, 64) == 0
    assert json_depth([], 64) == 1
    assert json_depth({"a": [{"b": []}]}, 64) == 4
    deep: Any = []
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    assert json_depth(deep, 64) == 65  # gives up past the limit


@pytest.mark.parametrize("depth", [255, 600, 5000])
def test_deep_json_is_a_400_not_a_500(
    app: tuple[str, Starlette], fake: FakeOpenAI, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    url, _ = app
    response = web.post(f"{url}/v1/chat/completions", content=nested(depth))
    assert_error(response, 400, "json_too_deep")
    assert len(response.content) < 300  # no traceback in the answer
    assert "Traceback" not in caplog.text and fake.calls["chat"] == 0


def test_moderate_nesting_still_passes(app: tuple[str, Starlette], fake: FakeOpenAI) -> None:
    url, _ = app
    assert web.post(f"{url}/v1/chat/completions", content=nested(40)).status_code == 200
    assert web.post(f"{url}/v1/embeddings", content=b'{"model": "gpt-4o-mini", "input": '
                    + b"[" * 70 + b"]" * 70 + b"}").status_code == 400  # fmt: skip


def test_feedback_and_batch_bodies_have_the_depth_limit(app: tuple[str, Starlette]) -> None:
    url, _ = app
    body = b'{"hit_id": "x", "correct": true, "y": ' + b"[" * 300 + b"]" * 300 + b"}"
    assert_error(web.post(f"{url}/v1/thrifty/feedback", content=body), 400, "json_too_deep")
    body = b'{"input_file_id": "f", "y": ' + b"[" * 300 + b"]" * 300 + b"}"
    assert_error(web.post(f"{url}/v1/batches", content=body), 400, "json_too_deep")


def test_depth_limit_is_configurable(fake: FakeOpenAI) -> None:
    with gateway(fake_config(fake.base_url, server={"max_json_depth": 8})) as (url, _):
        assert_error(web.post(f"{url}/v1/chat/completions", content=nested(8)), 400)
        assert web.post(f"{url}/v1/chat/completions", content=nested(4)).status_code == 200


def upload(url: str, size: int) -> Any:
    return web.post(
        f"{url}/v1/files",
        data={"purpose": "batch"},
        files={"file": ("in.jsonl", b"x" * size, "application/jsonl")},
    )


def test_upload_limit(app: tuple[str, Starlette], tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)  # the file store lives under the working directory
    url, _ = app
    assert_error(upload(url, 50_000), 413, "body_too_large")
    assert not list(tmp_path.rglob("*.jsonl"))  # nothing was written
    assert upload(url, 1000).status_code == 200


def test_upload_limit_applies_without_a_declared_length(
    app: tuple[str, Starlette], tmp_path: Any, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    url, _ = app
    boundary = "b0undary"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
        f"Content-Type: application/jsonl\r\n\r\n{'x' * 20_000}\r\n--{boundary}--\r\n"
    ).encode()

    def chunked() -> Iterator[bytes]:
        for i in range(0, len(form), 1000):
            yield form[i : i + 1000]

    response = web.post(
        f"{url}/v1/files",
        content=chunked(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_error(response, 413, "body_too_large")


def test_batch_lines_nested_too_deep_fail_validation_not_the_worker() -> None:
    """A deep line once crashed the batch's task (RecursionError) and left it validating."""
    from thrifty.batching.jobfile import parse_lines
    from thrifty.errors import JobFileError

    line = ('{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": '
            '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
            '"x": %s}}')  # fmt: skip
    for depth in (100, 100_000):  # past the limit; past Python's recursion limit
        with pytest.raises(JobFileError) as refused:
            parse_lines([line % ("[" * depth + "]" * depth)])
        assert "deeper than 64" in str(refused.value.problems[0])
    assert len(parse_lines([line % "[[]]"])) == 1


# --------------------------------------------------------------------- client disconnects
def call_disconnecting(app: Starlette, url: str, path: str, headers: list[tuple[bytes, bytes]],
                       first_part: bytes) -> list[dict[str, Any]]:  # fmt: skip
    """Send ``first_part`` of a body to ``path`` in-process, then disconnect; returns what the
    app sent."""
    from _gateway import _router

    host = url.removeprefix("http://")
    _, portal = _router.apps[host]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", host.encode()), *headers],
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 80),
        "app": app,
    }
    messages = iter([
        {"type": "http.request", "body": first_part, "more_body": True},
        {"type": "http.disconnect"},
    ])  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await app(scope, receive, send)

    portal.call(run)
    return sent


def status_count(url: str, status: str) -> float:
    text = web.get(f"{url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("thrifty_requests_total{") and f'status="{status}"' in line
    )


def test_disconnect_mid_request_is_499_not_an_error(
    app: tuple[str, Starlette], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    url, starlette_app = app
    sent = call_disconnecting(starlette_app, url, "/v1/chat/completions",
                              [(b"content-type", b"application/json"),
                               (b"content-length", b"500")], b'{"model": "gpt-')  # fmt: skip
    assert sent[0]["status"] == 499
    assert status_count(url, "499") == 1 and status_count(url, "500") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_disconnect_mid_upload_is_499_not_an_error(
    app: tuple[str, Starlette], caplog: pytest.LogCaptureFixture, tmp_path: Any, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    url, starlette_app = app
    head = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
            b"\r\n" + b"x" * 100)  # fmt: skip
    sent = call_disconnecting(starlette_app, url, "/v1/files",
                              [(b"content-type", b"multipart/form-data; boundary=b"),
                               (b"content-length", b"3000")], head)  # fmt: skip
    assert sent[0]["status"] == 499
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_disconnects_over_sockets_are_not_errors(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture, tmp_path: Any, monkeypatch: Any
) -> None:
    """What the fault run did: clients that hang up halfway through a request or an upload."""
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    with served_over_sockets(fake_config(fake.base_url)) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        heads = [
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b'\r\nContent-Length: 5000\r\n\r\n{"model": "gpt-4o-mini", "mess',
            b"POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: 50000\r\n\r\n--b\r\nContent-Disposition: "
            b'form-data; name="file"; filename="a.jsonl"\r\n\r\n' + b"x" * 2000,
        ]
        for head in heads * 3:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(head)
                time.sleep(0.1)  # the app is reading the body when the client goes
        time.sleep(0.3)
        assert status_count(url, "500") == 0
        assert status_count(url, "499") == 3
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# ------------------------------------------------------------------------------ TTL bounds
@pytest.mark.parametrize("ttl", ["1e308", "inf", "-inf", "nan", "-1", "0", "1e10", "Infinity"])
def test_ttl_header_outside_bounds_is_400(
    app: tuple[str, Starlette], fake: FakeOpenAI, ttl: str
) -> None:
    url, _ = app
    response = web.post(f"{url}/v1/chat/completions", json=HI, headers={"x-thrifty-ttl": ttl})
    error = assert_error(response, 400)
    assert error["param"] == "x-thrifty-ttl" and fake.calls["chat"] == 0


@pytest.mark.parametrize("ttl", [b"1e308", b'"inf"', b'"nan"', b"-1", b"0", b"1e10", b'"1e308"'])
def test_ttl_body_option_outside_bounds_is_400(
    app: tuple[str, Starlette], fake: FakeOpenAI, ttl: bytes
) -> None:
    url, _ = app
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], ' + (
        b'"thrifty": {"ttl": ' + ttl + b"}}"
    )
    assert_error(web.post(f"{url}/v1/chat/completions", content=body), 400)
    assert fake.calls["chat"] == 0


def test_ttl_within_bounds_is_stored(app: tuple[str, Starlette]) -> None:
    url, _ = app
    for _ in range(2):
        response = web.post(
            f"{url}/v1/chat/completions", json=HI, headers={"x-thrifty-ttl": str(MAX_TTL)}
        )
        assert response.status_code == 200
        from _gateway import stored

        stored(url)
    assert response.headers["x-thrifty-cache-status"] == "HIT"


@pytest.mark.parametrize("ttl", [1e308, float("inf"), float("nan"), -1.0, 0.0, MAX_TTL + 1])
def test_library_cache_ttl_outside_bounds_raises(ttl: float) -> None:
    with pytest.raises(ConfigError, match="ttl"):
        Cache("memory://", ttl=ttl)
    with pytest.raises(ConfigError, match="ttl"):
        Cache("memory://", namespace_ttl={"ns": ttl})
    cache = Cache("memory://")
    with pytest.raises(ConfigError, match="ttl"):
        cache.set("k", "v", ttl=ttl)
    assert cache.get("k") is None


def test_config_ttl_outside_bounds_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"cache\.ttl"):
        parse_config({"cache": {"ttl": 1e308}}, source="t.yaml")


@pytest.mark.redis
def test_ten_years_is_stored_on_redis() -> None:
    """The bound is one Redis takes: the longest TTL is stored, not silently dropped."""
    from conftest import REDIS_URL

    cache = Cache(f"{REDIS_URL}?prefix=thrifty-test-ttl-bounds:", ttl=MAX_TTL)
    try:
        cache.set("k", "v")
        assert cache.get("k") == "v"
    finally:
        cache.store.clear()
        cache.close()
