"""``cache.pii`` per API key and per namespace (issue 12): the gateway's ``keys[].pii`` and
``cache.pii_namespaces``, the library's ``ProtectSettings(pii_namespaces=...)`` chosen by the
``namespace`` each call passes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from _gateway import fake_config, gateway, stored, web
from thrifty.cache import Cache, ProtectSettings
from thrifty.errors import ConfigError
from thrifty.server.config import parse_config, pii_by_namespace
from thrifty.testing.fake_openai import FakeOpenAI

EMAIL = "jane.doe@example.com"
ASKED = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Mail {EMAIL}"}]}


def _answer(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


def test_library_modes_by_namespace_most_specific_first() -> None:
    protect = ProtectSettings(
        pii="skip_store",
        pii_namespaces={"a": "off", "a/hr": "skip_store", "b": "redact"},
    )
    cache = Cache("memory://", protect=protect)
    stored_in = {
        ns: cache.set_request(ASKED, _answer("ok"), namespace=ns) is not None
        for ns in ("a", "a/sales", "a/hr", "b/x", "c")
    }
    assert stored_in == {"a": True, "a/sales": True, "a/hr": False, "b/x": True, "c": False}
    hit = cache.lookup_request(ASKED, namespace="b/x")  # found through the redacted copy
    assert hit is not None and EMAIL not in str(cache.store.get(hit.entry.key))
    plain = cache.lookup_request(ASKED, namespace="a")
    assert plain is not None and plain.value == _answer("ok")


def test_a_namespace_override_turns_the_guard_on_when_the_default_is_off() -> None:
    cache = Cache("memory://", protect=ProtectSettings(pii_namespaces={"t": "skip_store"}))
    assert cache.set_request(ASKED, _answer("ok"), namespace="t") is None
    assert cache.set_request(ASKED, _answer("ok"), namespace="u") is not None
    with pytest.raises(ConfigError, match="'t'"):
        ProtectSettings(pii_namespaces={"t": "scrub"})


def _chat(url: str, key: str, namespace: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    if namespace:
        headers["X-Thrifty-Namespace"] = namespace
    response: httpx.Response = web.post(f"{url}/v1/chat/completions", json=ASKED, headers=headers)
    assert response.status_code == 200, response.text
    return response.headers["x-thrifty-cache-status"]


def test_gateway_pii_per_key_and_per_namespace(fake: FakeOpenAI) -> None:
    keys = [
        {"key": "sk-a", "tenant": "a", "pii": "skip_store"},
        {"key": "sk-b", "tenant": "b"},
    ]
    cache = {"url": "memory://", "pii": "off", "pii_namespaces": {"b/hr": "skip_store"}}
    with gateway(fake_config(fake.base_url, keys=keys, cache=cache)) as (url, _):
        statuses = {}
        for key, namespace in (("sk-a", None), ("sk-b", None), ("sk-b", "hr")):
            _chat(url, key, namespace)
            stored(url)
            statuses[(key, namespace)] = _chat(url, key, namespace)
    assert statuses == {
        ("sk-a", None): "MISS",  # the key's skip_store: never stored
        ("sk-b", None): "HIT",  # the default (off): stored
        ("sk-b", "hr"): "MISS",  # the namespace's skip_store
    }


def test_keys_of_one_tenant_must_agree() -> None:
    keys = [
        {"key": "sk-1", "tenant": "t", "pii": "skip_store"},
        {"key": "sk-2", "tenant": "t", "pii": "off"},
        {"key": "sk-3", "tenant": "u", "pii": "redact"},
    ]
    config = parse_config({"keys": keys[:1] + keys[2:], "cache": {"pii_namespaces": {"u": "off"}}})
    assert pii_by_namespace(config) == {"t": "skip_store", "u": "off"}  # the namespace wins
    with pytest.raises(ConfigError, match="tenant 't'"):
        pii_by_namespace(parse_config({"keys": keys}))
