"""Compression of RAG context in the gateway: where the context is found (thrifty.context, tags,
long user turns), the per-request header, the response header, the savings metric, the cache
key, 400s for bad input; and the context finder on its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from _gateway import fake_config, gateway, stored, web
from thrifty.compression.chat import ContextError, Marked, find_context, rewrite
from thrifty.server.config import parse_config
from thrifty.testing.fake_openai import FakeOpenAI

TOPICS = ["volcano", "glacier", "harbor", "orchard", "comet", "library", "bridge", "desert"]


def document(topic: str, n: int = 12) -> str:
    """A document about ``topic`` whose sentences differ (so selection has something to do)."""
    return " ".join(
        f"The {topic} report number {i} describes {topic} detail {i * 7} in plain words."
        for i in range(n)
    )


FACT = "The harbor master's office opens at seven thirty every weekday morning."
DOCS = [document(t) for t in TOPICS[:3]] + [FACT + " " + document("harbor", 4)]
QUESTION = "When does the harbor master's office open?"


def ask(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "temperature": 0,
            "messages": [{"role": "system", "content": "Answer from the context."},
                         {"role": "user", "content": QUESTION}], **extra}  # fmt: skip


def compression(**options: Any) -> dict[str, Any]:
    return {"embedder": "hashing", "min_tokens": 50, "floor": 20, **options}


@pytest.fixture
def served(fake: FakeOpenAI) -> Iterator[str]:
    config = fake_config(fake.base_url, compression=compression(enabled=True, ratio=0.3))
    with gateway(config) as (url, _):
        yield url


def post(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return web.post(f"{url}/v1/chat/completions", json=body, headers=headers)


def sent_user(fake: FakeOpenAI) -> str:
    return str(fake.requests[-1]["messages"][-1]["content"])


def savings(url: str) -> float:
    text = web.get(f"{url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("thrifty_savings_usd_total{") and 'mechanism="compressed"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_documents_in_thrifty_context_are_compressed_and_placed(
    served: str, fake: FakeOpenAI
) -> None:
    body = ask(thrifty={"context": [{"id": f"doc:{i}", "text": d} for i, d in enumerate(DOCS)]})
    response = post(served, body)
    assert response.status_code == 200, response.text
    before, after = map(int, response.headers["x-thrifty-compression"].split("->"))
    assert after < before * 0.4 and after >= 20
    user = sent_user(fake)
    assert user.startswith("<context>\n") and user.endswith(QUESTION)
    assert FACT in user  # the sentence the question needs survives
    assert "thrifty" not in fake.requests[-1]
    assert savings(served) > 0
    assert float(response.headers["x-thrifty-saved-usd"]) > 0


def test_titles_in_thrifty_context_are_used_and_not_sent(served: str, fake: FakeOpenAI) -> None:
    topics = ["volcano", "glacier", "orchard", "harbor"]
    docs = [
        {"id": f"doc:{i}", "title": f"{topic} handbook", "text": d}
        for i, (topic, d) in enumerate(zip(topics, DOCS, strict=True))
    ]
    response = post(served, ask(thrifty={"context": docs}))
    assert response.status_code == 200, response.text
    user = sent_user(fake)
    assert FACT in user and "handbook" not in user
    plan = find_context([], [Marked(text="Some text.", id="a", title="A title")])
    assert [(p.id, p.title) for p in plan.pieces] == [("a", "A title")]


def test_the_original_request_and_its_settings_are_the_cache_key(
    served: str, fake: FakeOpenAI
) -> None:
    body = ask(thrifty={"context": DOCS})
    first = post(served, body)
    saved = savings(served)
    again = post(served, body)
    assert (first.headers["x-thrifty-cache-status"], again.headers["x-thrifty-cache-status"]) == (
        "MISS",
        "HIT",
    )
    assert fake.calls["chat"] == 1
    assert savings(served) == saved  # a hit is credited as a hit, not as compression
    full = post(served, body, **{"X-Thrifty-Compression": "off"})
    assert full.headers["x-thrifty-cache-status"] == "MISS"  # another prompt: another entry
    assert "x-thrifty-compression" not in full.headers
    assert all(d in sent_user(fake) for d in DOCS)
    other_ratio = post(served, body, **{"X-Thrifty-Compression": "0.5"})
    assert other_ratio.headers["x-thrifty-cache-status"] == "MISS"
    other_docs = post(served, ask(thrifty={"context": [*DOCS[:-1], FACT]}))
    assert other_docs.headers["x-thrifty-cache-status"] == "MISS"  # given documents count


def test_the_compressed_prompt_is_the_key_only_when_the_caller_opts_in(
    served: str, fake: FakeOpenAI
) -> None:
    body = ask(thrifty={"context": DOCS})
    assert post(served, body).headers["x-thrifty-cache-status"] == "MISS"
    prompt = ask()
    prompt["messages"] = fake.requests[-1]["messages"]  # the compressed prompt, asked plainly
    stored(served)
    plain = post(served, prompt, **{"X-Thrifty-Compression": "off"})  # (its <context> as is)
    assert plain.headers["x-thrifty-cache-status"] == "MISS"  # the original was the key
    stored(served)
    opted = post(served, body, **{"X-Thrifty-Compression-Key": "compressed"})
    assert opted.headers["x-thrifty-cache-status"] == "HIT"  # keyed on the prompt it sends
    assert fake.calls["chat"] == 2
    bad = post(served, body, **{"X-Thrifty-Compression-Key": "prompt"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "x-thrifty-compression-key"


def test_the_compressed_key_from_the_config(fake: FakeOpenAI) -> None:
    config = fake_config(
        fake.base_url, compression=compression(enabled=True, ratio=0.3, key="compressed")
    )
    with gateway(config) as (url, _):
        assert post(url, ask(thrifty={"context": DOCS})).status_code == 200
        prompt = ask()
        prompt["messages"] = fake.requests[-1]["messages"]
        stored(url)
        plain = post(url, prompt, **{"X-Thrifty-Compression": "off"})
        assert plain.headers["x-thrifty-cache-status"] == "HIT"
        original = post(
            url, ask(thrifty={"context": DOCS}), **{"X-Thrifty-Compression-Key": "original"}
        )
        assert original.headers["x-thrifty-cache-status"] == "MISS"


def test_tagged_blocks_and_message_indexes(served: str, fake: FakeOpenAI) -> None:
    tagged = "".join(f'<context id="d{i}">{d}</context>\n' for i, d in enumerate(DOCS))
    body = ask()
    body["messages"][1]["content"] = tagged + QUESTION
    assert post(served, body).status_code == 200
    user = sent_user(fake)
    assert user.count("<context") == len(DOCS) and FACT in user and user.endswith(QUESTION)
    assert len(user) < len(tagged) * 0.6
    indexed = ask(thrifty={"context": [1], "question": QUESTION})
    indexed["messages"].insert(1, {"role": "user", "content": "\n\n".join(DOCS)})
    response = post(served, indexed)
    assert response.status_code == 200
    assert "->" in response.headers["x-thrifty-compression"]
    assert FACT in fake.requests[-1]["messages"][1]["content"]
    assert fake.requests[-1]["messages"][2]["content"] == QUESTION


def test_header_ratio_and_off(fake: FakeOpenAI) -> None:
    config = fake_config(fake.base_url, compression=compression(enabled=False))
    with gateway(config) as (url, _):
        body = ask(thrifty={"context": DOCS})
        plain = post(url, body)  # disabled: documents go in whole, nothing is cut
        assert "x-thrifty-compression" not in plain.headers
        assert all(d in sent_user(fake) for d in DOCS)
        cut = post(url, body, **{"X-Thrifty-Compression": "0.5"})
        before, after = map(int, cut.headers["x-thrifty-compression"].split("->"))
        assert after <= before * 0.5
        bad = post(url, body, **{"X-Thrifty-Compression": "1.5"})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "x-thrifty-compression"


def test_long_user_turns_when_configured(fake: FakeOpenAI) -> None:
    config = fake_config(
        fake.base_url, compression=compression(enabled=True, ratio=0.3, user_turns_over=100)
    )
    with gateway(config) as (url, _):
        body = ask()
        body["messages"][1]["content"] = "\n\n".join(DOCS) + "\n\n" + QUESTION
        response = post(url, body)
        assert response.status_code == 200
        user = sent_user(fake)
        assert user.endswith(QUESTION) and FACT in user
        assert len(user) < len(body["messages"][1]["content"]) * 0.6


def test_per_model_override_and_small_contexts(fake: FakeOpenAI) -> None:
    options = compression(enabled=True, ratio=0.3, models={"backup": {"enabled": False}})
    with gateway(fake_config(fake.base_url, compression=options)) as (url, _):
        body = ask(thrifty={"context": DOCS})
        assert "x-thrifty-compression" in post(url, body).headers
        off = post(url, {**body, "model": "backup"})
        assert "x-thrifty-compression" not in off.headers
        small = post(url, ask(thrifty={"context": ["One short note."]}))
        assert small.headers["x-thrifty-compression"] == "4->4"  # under min_tokens: as is


def test_bad_context_is_a_400(served: str) -> None:
    out_of_range = post(served, ask(thrifty={"context": [7]}))
    assert out_of_range.status_code == 400
    assert "message 7" in out_of_range.json()["error"]["message"]
    both = post(served, ask(thrifty={"context": [{"text": "x", "message": 0}]}))
    assert both.status_code == 400


def test_bad_compression_config_fails_at_load() -> None:
    with pytest.raises(Exception, match="ratio"):
        parse_config({"compression": {"models": {"m": {"ratio": 2}}}})
    with pytest.raises(Exception, match="compression"):
        parse_config({"compression": {"unknown": 1}})


def test_find_context_and_rewrite_keep_everything_else() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "A <context>one two</context> B"}]},
        {"role": "user", "content": "question?"},
    ]
    plan = find_context(messages, [Marked(text="given", id="g")])
    assert [p.text for p in plan.pieces] == ["given", "one two"]
    assert plan.ids == ["g"] and plan.question == "question?"
    body = rewrite({"model": "m", "messages": messages}, plan, ["GIVEN", "one"])
    assert body["messages"][1]["content"][0]["text"] == "A <context>one</context> B"
    assert body["messages"][2]["content"] == "<context>\nGIVEN\n</context>\n\nquestion?"
    assert messages[2]["content"] == "question?"  # the original is not touched
    with pytest.raises(ContextError):
        find_context(messages, [Marked(message=0), Marked(message=5)])
    with pytest.raises(ContextError, match="not in the request"):
        find_context(messages, [Marked(message=-4)])  # a negative index is refused, not wrapped


def test_requests_never_wait_for_the_static_table_build(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the static embedder and no table on disk, the gateway starts the one-off build on a
    thread at start-up; meanwhile contexts go upstream whole (``warming``), then compressed."""
    import threading

    from thrifty.compression import Compressor, DocumentCache
    from thrifty.semantic.embedder import HashingEmbedder
    from thrifty.server import compressing

    release = threading.Event()
    built: list[str] = []

    def slow_build(name: str) -> Compressor:
        assert name == "static"
        release.wait(10)
        built.append(name)
        return Compressor(HashingEmbedder(), cache=DocumentCache())

    monkeypatch.setattr(compressing, "static_table_ready", lambda: False)
    monkeypatch.setattr(compressing, "Compressor", slow_build)
    options = compression(enabled=True, ratio=0.3, embedder="static")
    with gateway(fake_config(fake.base_url, compression=options)) as (url, _):
        first = post(url, ask(thrifty={"context": DOCS}))
        assert first.status_code == 200, first.text
        assert first.headers["x-thrifty-compression"] == "warming"
        assert all(d in sent_user(fake) for d in DOCS)
        release.set()
        for attempt in range(200):  # the build thread hands its compressor over when done
            second = post(url, ask(thrifty={"context": DOCS[::-1]}, seed=attempt))
            assert second.status_code == 200, second.text
            if second.headers["x-thrifty-compression"] != "warming":
                break
            threading.Event().wait(0.01)
        before, after = map(int, second.headers["x-thrifty-compression"].split("->"))
        assert after < before and FACT in sent_user(fake)
    assert built == ["static"]  # one build for the worker, however many requests came meanwhile
