"""Client mistakes get 4xx OpenAI error bodies; upstream failures 502/503/504 or a fallback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from _gateway import fake_config, gateway, sdk, web
from thrifty.server.config import parse_config
from thrifty.testing.fake_openai import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def served(fake: FakeOpenAI) -> Iterator[str]:
    config = fake_config(fake.base_url, server={"max_body_bytes": 4096})
    with gateway(config) as (url, _):
        yield url


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'"text"', 400, None),
        (b"{}", 400, "model"),
        (b'{"model": "gpt-4o-mini"}', 400, "messages"),
        (b'{"model": "gpt-4o-mini", "messages": []}', 400, "messages"),
        (b'{"model": "gpt-4o-mini", "messages": "hi"}', 400, "messages"),
        (b'{"model": "gpt-4o-mini", "messages": [{"content": "x"}]}', 400, "messages[0].role"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', 400, "model"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "temperature": "hot"}',
            400,
            "temperature",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "stream": "yes"}',
            400,
            "stream",
        ),
        (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, "model"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "thrifty": {"cache": "x"}}',
            400,
            None,
        ),
    ],
)
def test_bad_chat_requests_get_4xx(
    served: str, fake: FakeOpenAI, body: bytes, status: int, param: str | None
) -> None:
    response = web.post(
        f"{served}/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, status, param)
    assert fake.calls["chat"] == 0


def test_bad_embeddings_and_completions(served: str) -> None:
    assert_error(web.post(f"{served}/v1/embeddings", json={"model": "gpt-4o-mini"}), 400, "input")
    assert_error(
        web.post(f"{served}/v1/completions", json={"model": "gpt-4o-mini", "prompt": {"a": 1}}), 400
    )


def test_oversized_body_gets_413(served: str, fake: FakeOpenAI) -> None:
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 5000}]}
    error = assert_error(web.post(f"{served}/v1/chat/completions", json=big), 413)
    assert "4096" in error["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        yield b"y" * 5000
        yield b'"}]}'

    assert_error(web.post(f"{served}/v1/chat/completions", content=chunked()), 413)
    assert fake.calls["chat"] == 0


def test_bad_cache_headers_get_400(served: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": HI}
    for header, value in (
        ("X-Thrifty-Cache", "sometimes"),
        ("X-Thrifty-TTL", "-5"),
        ("X-Thrifty-TTL", "soon"),
        ("X-Thrifty-Cache-Temperature", "maybe"),
    ):
        response = web.post(f"{served}/v1/chat/completions", json=body, headers={header: value})
        assert_error(response, 400, header.lower())


def test_unknown_route_and_method(served: str) -> None:
    assert_error(web.get(f"{served}/v1/nothing"), 404)
    assert_error(web.get(f"{served}/v1/chat/completions"), 405)


def test_upstream_failing_after_retries_is_502(served: str, fake: FakeOpenAI) -> None:
    fake.fail_next(times=10, status=500)
    client = sdk(served, "k")
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert caught.value.status_code == 502
    assert "gpt-4o-mini" in caught.value.message and "attempt" in caught.value.message
    assert fake.calls["chat"] == 2  # the first attempt and num_retries=1


def test_retry_then_success_is_a_miss(served: str, fake: FakeOpenAI) -> None:
    fake.fail_next(times=1, status=503)
    response = web.post(
        f"{served}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI}
    )
    assert response.status_code == 200
    assert response.headers["x-thrifty-cache-status"] == "MISS"
    assert fake.calls["chat"] == 2


def test_upstream_client_error_passes_through(served: str, fake: FakeOpenAI) -> None:
    fake.fail_next(times=1, status=400)
    response = web.post(
        f"{served}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI}
    )
    error = assert_error(response, 400)
    assert "fake failure 400" in error["message"]
    assert fake.calls["chat"] == 1  # a 400 is not retried


def test_upstream_rate_limit_is_503_with_retry_after(fake: FakeOpenAI) -> None:
    fake.fail_next(times=10, status=429)
    fake.failure_headers = {"Retry-After": "0"}
    with gateway(fake_config(fake.base_url)) as (url, _):
        response = web.post(
            f"{url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI}
        )
    assert_error(response, 503)


def test_upstream_timeout_is_504() -> None:
    with FakeOpenAI(delay=1.0) as slow:
        config = fake_config(slow.base_url, router_settings={"num_retries": 0, "timeout": 0.2})
        with gateway(config) as (url, _):
            response = web.post(
                f"{url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI}
            )
    error = assert_error(response, 504)
    assert "gpt-4o-mini" in error["message"]


def test_unreachable_upstream_is_502() -> None:
    config = fake_config("http://127.0.0.1:9/v1", router_settings={"num_retries": 0})
    with gateway(config) as (url, _):
        response = web.post(
            f"{url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI}
        )
    assert_error(response, 502)


def test_fallback_answers_when_the_model_keeps_failing(fake: FakeOpenAI) -> None:
    with FakeOpenAI() as backup:
        config = fake_config(
            fake.base_url,
            router_settings={
                "num_retries": 1,
                "retry_base_delay": 0,
                "fallbacks": [{"gpt-4o-mini": ["backup"]}],
            },
        )
        data = config.model_dump()
        data["model_list"][1]["litellm_params"]["api_base"] = backup.base_url
        with gateway(parse_config(data)) as (url, _):
            fake.fail_next(times=2, status=500)
            response = web.post(
                f"{url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI}
            )
            metrics = web.get(f"{url}/metrics").text
        assert response.status_code == 200
        assert response.headers["x-thrifty-route"] == "backup#0"
        assert fake.calls["chat"] == 2 and backup.calls["chat"] == 1
        assert 'thrifty_fallbacks_total{model="gpt-4o-mini"} 1.0' in metrics


def test_streamed_request_failing_before_first_chunk_is_an_http_error(
    served: str, fake: FakeOpenAI
) -> None:
    fake.fail_next(times=10, status=500)
    client = sdk(served, "k")
    with pytest.raises(openai.APIStatusError) as caught:
        list(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))
    assert caught.value.status_code == 502


def test_stream_failing_midway_sends_an_error_event_and_is_not_stored(
    served: str, fake: FakeOpenAI
) -> None:
    fake.stream_error_after = 3
    client = sdk(served, "k")
    with pytest.raises(openai.APIError, match="mid-stream"):
        list(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))
    fake.stream_error_after = None
    again = web.post(f"{served}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI})
    assert again.headers["x-thrifty-cache-status"] == "MISS"


def test_deployments_of_one_model_are_balanced_and_a_failing_one_cools_down() -> None:
    with FakeOpenAI() as one, FakeOpenAI() as two:
        deployment = {"model": "openai/gpt-4o-mini", "api_key": "sk-fake"}
        config = parse_config(
            {
                "model_list": [
                    {
                        "model_name": "gpt-4o-mini",
                        "litellm_params": {**deployment, "api_base": one.base_url},
                    },
                    {
                        "model_name": "gpt-4o-mini",
                        "litellm_params": {**deployment, "api_base": two.base_url},
                    },
                ],
                "router_settings": {
                    "num_retries": 1,
                    "retry_base_delay": 0,
                    "allowed_fails": 1,
                    "cooldown_time": 60,
                },
                "cache": {"url": "memory://", "enabled": False},
            }
        )
        with gateway(config) as (url, _):
            for i in range(20):
                answer = web.post(
                    f"{url}/v1/chat/completions",
                    json={
                        "model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": f"{i}"}],
                    },
                )
                assert answer.status_code == 200
            assert one.calls["chat"] > 0 and two.calls["chat"] > 0
            one.fail_next(times=100, status=500)
            routes = set()
            for i in range(10):
                answer = web.post(
                    f"{url}/v1/chat/completions",
                    json={
                        "model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": f"x{i}"}],
                    },
                )
                assert answer.status_code == 200
                routes.add(answer.headers["x-thrifty-route"])
            assert routes == {"gpt-4o-mini#1"}
            assert one.calls["chat"] <= 20 + 1  # at most one failed attempt, then cooled down


def test_unloadable_local_model_is_503(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = parse_config(
        {
            "model_list": [
                {
                    "model_name": "local",
                    "model": "thrifty/local",
                    "model_path": str(tmp_path / "missing.gguf"),
                }
            ],
            "cache": {"url": "memory://"},
        }
    )
    with gateway(config) as (url, _):
        response = web.post(f"{url}/v1/chat/completions", json={"model": "local", "messages": HI})
    error = assert_error(response, 503)
    assert "missing.gguf" in error["message"] and error["code"] == "model_unavailable"
