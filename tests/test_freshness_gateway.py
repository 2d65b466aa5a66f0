"""Fresh RAG answers through the gateway: the documents a request names tag its cached answer
(X-Thrifty-Tags, thrifty.tags, thrifty.context ids), invalidation by tag and deletion by key
through the admin API and the CLI, TTLs per tag and per namespace."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from _gateway import fake_config, gateway, stored, web
from thrifty.cache import Cache
from thrifty.cli import app
from thrifty.testing.fake_openai import FakeOpenAI

ADMIN = "sk-admin-fresh"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "temperature": 0,
            "messages": [{"role": "user", "content": text}], **extra}  # fmt: skip


def post(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return web.post(f"{url}/v1/chat/completions", json=body, headers=headers)


def status(response: httpx.Response) -> str:
    return response.headers["x-thrifty-cache-status"]


def test_tags_from_header_body_and_context_invalidate_answers(fake: FakeOpenAI) -> None:
    with gateway(fake_config(fake.base_url, admin_key=ADMIN)) as (url, _):
        by_header = ask("rates?")
        by_body = ask("profile?", thrifty={"tags": ["doc:profile"]})
        by_context = ask("who?", thrifty={"context": [{"id": "doc:42", "text": "Ada wrote it."}]})
        post(url, by_header, **{"X-Thrifty-Tags": "doc:fx, shared"})
        post(url, by_body)
        post(url, by_context)
        stored(url)
        assert [
            status(post(url, b, **{"X-Thrifty-Tags": "doc:fx, shared"} if b is by_header else {}))
            for b in (by_header, by_body, by_context)
        ] == ["HIT"] * 3
        gone = web.post(f"{url}/admin/invalidate", json={"tag": "doc:42"}, headers=HEADERS)
        assert gone.json() == {"invalidated": 1}
        assert status(post(url, by_context)) == "MISS"
        assert status(post(url, by_body)) == "HIT"
        fx = web.post(f"{url}/admin/invalidate", json={"tag": "shared"}, headers=HEADERS)
        assert fx.json() == {"invalidated": 1}


def test_delete_by_key_through_admin_and_cli(fake: FakeOpenAI, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fresh.db'}"
    config = fake_config(fake.base_url, admin_key=ADMIN, cache={"url": db})
    with gateway(config) as (url, _):
        first = post(url, ask("one"))
        key = first.headers["x-thrifty-cache-key"]
        second_key = post(url, ask("two")).headers["x-thrifty-cache-key"]
        stored(url)
        mixed = web.post(f"{url}/admin/invalidate", json={"key": key, "tag": "x"}, headers=HEADERS)
        assert mixed.status_code == 400
        deleted = web.post(f"{url}/admin/invalidate", json={"key": key}, headers=HEADERS)
        assert deleted.json() == {"invalidated": 1}
        assert status(post(url, ask("one"))) == "MISS"
        stored(url)
    result = CliRunner().invoke(app, ["cache", "delete", second_key, "--cache", db])
    assert result.exit_code == 0, result.output
    assert "removed 1" in result.output
    with Cache(db) as cache:
        assert cache.lookup(second_key) is None


def test_ttl_per_tag_and_namespace(fake: FakeOpenAI) -> None:
    cache = {"url": "memory://", "tag_ttl": {"fx": 0.3, "slow": 60},
             "namespace_ttl": {"default/short": 0.3}}  # fmt: skip
    with gateway(fake_config(fake.base_url, cache=cache)) as (url, _):
        fx = ask("eur to usd?", thrifty={"tags": ["slow", "fx"]})
        kept = ask("gbp to usd?", thrifty={"tags": ["fx"], "ttl": 60})  # the request's TTL wins
        short = ask("in a namespace", thrifty={"namespace": "short"})
        post(url, fx)
        post(url, kept)
        post(url, short)
        stored(url)
        assert status(post(url, fx)) == "HIT"
        time.sleep(0.5)
        assert status(post(url, fx)) == "MISS"  # the shortest tag's lifetime
        assert status(post(url, short)) == "MISS"
        assert status(post(url, kept)) == "HIT"


def test_too_many_tags_is_a_400(fake: FakeOpenAI) -> None:
    with gateway(fake_config(fake.base_url)) as (url, _):
        many = ",".join(f"t{i}" for i in range(70))
        response = post(url, ask("x"), **{"X-Thrifty-Tags": many})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "x-thrifty-tags"
