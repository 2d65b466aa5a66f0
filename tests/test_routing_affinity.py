"""Prefix affinity: a shared long prompt prefix keeps its deployment (prompt caches stay warm)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from _gateway import gateway, web
from thrifty.errors import UpstreamError
from thrifty.retry import RetryPolicy
from thrifty.routing import Deployment, DeploymentPool
from thrifty.routing.affinity import prefix_key, rendezvous
from thrifty.server.config import parse_config
from thrifty.testing.fake_openai import FakeOpenAI

DOCS = "Our refund policy, in full. " * 300  # ~8k characters: long enough to be cached


def chat(system: str, question: str) -> dict[str, object]:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ]
    }


def test_prefix_key_names_the_shared_prefix() -> None:
    a = prefix_key(chat(DOCS, "Can I return shoes?"))
    b = prefix_key(chat(DOCS, "What about socks?"))
    assert a is not None and a == b
    assert prefix_key(chat(DOCS, "x"), tenant="t1") != prefix_key(chat(DOCS, "x"), tenant="t2")
    assert prefix_key(chat("Be brief.", "hi")) is None  # too short for a provider to cache
    assert prefix_key({"prompt": DOCS}) is not None


def test_rendezvous_is_stable_and_weighted() -> None:
    pool = [Deployment("m", id=f"m#{i}", weight=3.0 if i == 0 else 1.0) for i in range(4)]
    keys = [f"key{i}" for i in range(4000)]
    owners = {k: rendezvous(pool, k).id for k in keys}
    counts = Counter(owners.values())
    assert 0.42 < counts["m#0"] / len(keys) < 0.58  # weight 3 of 6
    # One deployment leaves: only its keys move.
    rest = [d for d in pool if d.id != "m#3"]
    moved = [k for k in keys if rendezvous(rest, k).id != owners[k]]
    assert moved and all(owners[k] == "m#3" for k in moved)


def test_pool_sends_a_prefix_to_its_deployment_and_fails_over() -> None:
    pool = DeploymentPool(
        [Deployment("m", id=f"m#{i}") for i in range(4)],
        policy=RetryPolicy(num_retries=2, base_delay=0.0, jitter=False),
    )
    key = prefix_key(chat(DOCS, "q"))
    seen: list[str] = []

    async def ok(deployment: Deployment) -> str:
        seen.append(deployment.id)
        return deployment.id

    async def run_all() -> None:
        for _ in range(10):
            await pool.run("m", ok, affinity=key)

    asyncio.run(run_all())
    assert len(set(seen)) == 1
    owner = seen[0]

    async def owner_fails(deployment: Deployment) -> str:
        if deployment.id == owner:
            raise UpstreamError("busy", status=503)
        return deployment.id

    routed = asyncio.run(pool.run("m", owner_fails, affinity=key))
    assert routed.result != owner and routed.attempts[0].deployment == owner


def test_gateway_keeps_a_prefix_on_one_deployment_and_sends_prompt_cache_key(
    tmp_path: Path,
) -> None:
    def reply(request: dict[str, Any], number: int) -> str:
        return "ok"

    with FakeOpenAI(reply) as a, FakeOpenAI(reply) as b, FakeOpenAI(reply) as c:
        fakes = {"gpt-4o#0": a, "gpt-4o#1": b, "gpt-4o#2": c}
        config = parse_config(
            {
                "model_list": [
                    {
                        "model_name": "gpt-4o",
                        "model": "openai/gpt-4o",
                        "api_base": fake.base_url,
                        "api_key": "sk-fake",
                        "model_info": {"id": name},
                    }
                    for name, fake in fakes.items()
                ],
                "router_settings": {"prompt_cache_affinity": True, "prompt_cache_key": True},
                "cache": {"url": "memory://"},
            },
            source=str(tmp_path / "gateway.yaml"),
        )
        with gateway(config) as (url, _):
            served = set()
            for i in range(8):
                body = {"model": "gpt-4o", **chat(DOCS, f"question {i}")}
                response = web.post(f"{url}/v1/chat/completions", json=body, timeout=10)
                assert response.status_code == 200, response.text
                served.add(response.headers["x-thrifty-route"])
            assert len(served) == 1
            sent = fakes[served.pop()].requests
            assert len(sent) == 8 and len({r["prompt_cache_key"] for r in sent}) == 1
            short = {"model": "gpt-4o", **chat("Be brief.", "hi")}
            response = web.post(f"{url}/v1/chat/completions", json=short, timeout=10)
            assert response.status_code == 200, response.text
            last = fakes[response.headers["x-thrifty-route"]].requests[-1]
            assert last["messages"][0]["content"] == "Be brief."
            assert "prompt_cache_key" not in last  # too short for a provider cache: no key
