"""The gateway's ``cache: {pii, encryption_key}``: what the cache may store, and sealed at rest."""

from __future__ import annotations

import base64
import os

import httpx
import pytest

from _gateway import fake_config, gateway, stored, web
from thrifty.errors import ConfigError
from thrifty.store.sealed import SealedStore
from thrifty.testing.fake_openai import FakeOpenAI

ASKED = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Send the invoice to jane.doe@example.com"}],
}
PLAIN = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def post(url: str, body: dict) -> httpx.Response:
    response = web.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response


def status(response: httpx.Response) -> str:
    return response.headers["x-thrifty-cache-status"]


def test_skip_store_answers_a_request_with_an_email_and_stores_nothing(fake: FakeOpenAI) -> None:
    config = fake_config(fake.base_url, cache={"url": "memory://", "pii": "skip_store"})
    with gateway(config) as (url, app):
        cache = app.state.gateway.cache
        assert status(post(url, ASKED)) == "MISS"
        stored(url)  # else the second could coalesce onto the first's write still in flight
        assert status(post(url, ASKED)) == "MISS"
        assert fake.calls["chat"] == 2
        # a request without PII is stored (after the two, by the same write-behind queue)
        assert status(post(url, PLAIN)) == "MISS"
        stored(url)  # the answer is written after the response (write-behind)
        assert status(post(url, PLAIN)) == "HIT"
        assert cache.store.usage()[0] == 1
        assert fake.calls["chat"] == 3


def test_encryption_key_is_read_from_the_environment(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("THRIFTY_TEST_CACHE_KEY", secret)
    cache_settings = {
        "url": "memory://",
        "pii": "redact",
        "encryption_key": "os.environ/THRIFTY_TEST_CACHE_KEY",
    }
    config = fake_config(fake.base_url, cache=cache_settings)
    assert secret not in repr(config)
    with gateway(config) as (url, app):
        cache = app.state.gateway.cache
        assert isinstance(cache.store, SealedStore)
        assert status(post(url, PLAIN)) == "MISS"
        stored(url)
        assert status(post(url, PLAIN)) == "HIT"  # sealed on write, opened on read
        post(url, ASKED)
        stored(url)
        assert status(post(url, ASKED)) == "HIT"  # the redacted copy, under the redacted key
    monkeypatch.delenv("THRIFTY_TEST_CACHE_KEY")
    with pytest.raises(ConfigError, match="THRIFTY_TEST_CACHE_KEY"):
        fake_config(fake.base_url, cache=cache_settings)
