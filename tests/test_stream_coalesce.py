"""Identical streams share one upstream call from the first request (issue 12, item 4).

Before, a streamed request joined an identical stream only once its first chunk had come: 200
identical streamed requests while the upstream was still thinking made 200 upstream calls. Now
the leader's tee exists from its miss on, the others wait on it, and if the leader fails before
its first chunk one of them leads the next try. A streamed request identical to a plain answer
that was sent and is still being stored (write-behind) replays that answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx

from _gateway import _router, fake_config, gateway, stored, web
from thrifty.cache import Cache
from thrifty.entry import Entry
from thrifty.store.memory import MemoryStore
from thrifty.store.wrapper import StoreWrapper
from thrifty.testing.fake_openai import FakeOpenAI

QUESTION = [{"role": "user", "content": "name four colours"}]
STREAM = {"model": "gpt-4o-mini", "messages": QUESTION, "stream": True}


def concurrently(url: str, bodies: Sequence[dict[str, Any]]) -> list[httpx.Response]:
    """Send every body at once to the in-process gateway at ``url`` (on its own event loop, so
    they are truly concurrent) and read each response whole."""
    app, portal = _router.apps[httpx.URL(url).host]

    async def send_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=url, timeout=30) as client:
            return list(
                await asyncio.gather(
                    *(client.post("/v1/chat/completions", json=body) for body in bodies)
                )
            )

    return portal.call(send_all)


def content(response: httpx.Response) -> str:
    """The text a streamed answer carried (its deltas joined)."""
    import json

    text = []
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text)


def test_identical_streams_share_one_call_while_the_upstream_thinks() -> None:
    with FakeOpenAI(delay=0.5) as fake, gateway(fake_config(fake.base_url)) as (url, _):
        responses = concurrently(url, [STREAM] * 200)
        calls = fake.calls["chat"]
    assert calls == 1
    assert {r.status_code for r in responses} == {200}
    statuses = Counter(r.headers["x-thrifty-cache-status"] for r in responses)
    assert statuses == {"MISS": 1, "HIT": 199}
    texts = {content(r) for r in responses}
    assert len(texts) == 1 and texts != {""}
    assert all(r.text.rstrip().endswith("data: [DONE]") for r in responses)


def test_when_the_leader_fails_before_its_first_chunk_one_waiter_leads_again() -> None:
    """The leader's two attempts fail (a 502 for its client only); the requests waiting on it
    are not given its error: one of them calls the upstream again and the rest share that."""
    with FakeOpenAI(delay=0.3) as fake, gateway(fake_config(fake.base_url)) as (url, _):
        fake.fail_next(times=2, status=500)  # the leader's attempt and its one retry
        responses = concurrently(url, [STREAM] * 50)
        calls = fake.calls["chat"]
    codes = Counter(r.status_code for r in responses)
    assert codes == {200: 49, 502: 1}
    assert calls == 3
    assert len({content(r) for r in responses if r.status_code == 200}) == 1


class FakeSlowWrites(StoreWrapper):
    """A memory store whose writes wait until ``release`` is set: a write-behind queue that
    has not been stored yet."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())
        self.release = threading.Event()

    def set(self, entry: Entry) -> None:
        self.release.wait(10)
        super().set(entry)

    def set_many(self, entries: Sequence[Entry]) -> None:
        self.release.wait(10)
        super().set_many(entries)


def test_a_stream_gets_a_plain_answer_still_queued_for_write_behind() -> None:
    store = FakeSlowWrites()
    cache = Cache(store, write_behind=True)
    with FakeOpenAI() as fake, gateway(fake_config(fake.base_url), cache=cache) as (url, _):
        plain = web.post(
            f"{url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": QUESTION}
        )
        streamed = web.post(f"{url}/v1/chat/completions", json=STREAM)
        calls = fake.calls["chat"]
        store.release.set()
        stored(url)
    assert plain.status_code == 200 and streamed.status_code == 200
    assert calls == 1
    assert streamed.headers["x-thrifty-cache-status"] == "HIT"
    assert content(streamed) == plain.json()["choices"][0]["message"]["content"]
    assert streamed.text.rstrip().endswith("data: [DONE]")
