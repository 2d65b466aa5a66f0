"""thrifty.wrap with the real OpenAI SDK against FakeOpenAI, a fake upstream on 127.0.0.1."""

from __future__ import annotations

import threading

import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import thrifty
from thrifty.cache import SemanticSettings
from thrifty.errors import BackendError, ConfigError
from thrifty.integrations.openai import cache_status
from thrifty.store.memory import MemoryStore
from thrifty.testing.fake_openai import FakeOpenAI

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0}


@pytest.fixture(params=["memory", "sqlite"])
def cache(request, tmp_path):
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/wrap.db"
    with thrifty.Cache(url) as c:
        yield c


@pytest.fixture
def raw(fake):
    with openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0) as sdk_client:
        yield sdk_client


@pytest.fixture
def client(raw, cache):
    return thrifty.wrap(raw, cache)


@pytest.fixture
async def aclient(fake, cache):
    async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0) as raw:
        yield thrifty.wrap(raw, cache)


def text_of(stream) -> str:
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_second_identical_call_is_a_hit_and_never_reaches_upstream(client, fake):
    first = client.chat.completions.create(**CHAT)
    second = client.chat.completions.create(**CHAT)
    assert fake.calls["chat"] == 1
    assert isinstance(second, ChatCompletion)
    assert cache_status(first) == "miss"
    assert cache_status(second) == "hit"
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.usage == first.usage


def test_order_whitespace_and_default_params_do_not_change_the_key(client, fake):
    schema = {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}}}
    client.chat.completions.create(**CHAT, response_format=schema)
    reordered = {
        "json_schema": {"schema": {"type": "object"}, "name": "city"},
        "type": "json_schema",
    }
    again = client.chat.completions.create(
        temperature=0.0,
        response_format=reordered,
        messages=[{"content": "What is the capital of France?", "role": "user"}],
        model="gpt-4o-mini",
        top_p=1,
        n=1,
        presence_penalty=0,
        stream=False,
        user="someone",
    )
    assert cache_status(again) == "hit"
    assert fake.calls["chat"] == 1


def test_messages_given_as_a_generator_are_sent_and_keyed(client, fake):
    first = client.chat.completions.create(**{**CHAT, "messages": (m for m in MESSAGES)})
    assert first.choices[0].message.content == "Reply 1: What is the capital of France?"
    assert cache_status(client.chat.completions.create(**CHAT)) == "hit"


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o"},
        {"max_tokens": 5},
        {"messages": [{"role": "user", "content": "What is the capital of Spain?"}]},
        {"messages": [{"role": "system", "content": "Be brief."}, *MESSAGES]},
        {"seed": 7},
        {"extra_body": {"top_k": 3}},
    ],
)
def test_a_different_request_misses(client, fake, change):
    client.chat.completions.create(**CHAT)
    other = client.chat.completions.create(**{**CHAT, **change})
    assert cache_status(other) == "miss"
    assert fake.calls["chat"] == 2


async def test_async_client_caches(aclient, fake):
    first = await aclient.chat.completions.create(**CHAT)
    second = await aclient.chat.completions.create(**CHAT)
    assert isinstance(second, ChatCompletion)
    assert (cache_status(first), cache_status(second)) == ("miss", "hit")
    assert second.choices[0].message.content == first.choices[0].message.content
    assert fake.calls["chat"] == 1


def test_stream_is_recorded_and_replayed(client, fake):
    live = list(client.chat.completions.create(**CHAT, stream=True))
    with client.chat.completions.create(**CHAT, stream=True) as replay:
        assert cache_status(replay) == "hit"
        replayed = list(replay)
    assert fake.calls["chat"] == 1
    assert all(isinstance(c, ChatCompletionChunk) for c in replayed)
    # A stream is stored as the completion it assembles into, replayed as whole chunks.
    assert text_of(replayed) == text_of(live) == "Reply 1: What is the capital of France?"
    assert replayed[-1].choices[0].finish_reason == live[-1].choices[0].finish_reason
    assert replayed[0].id == live[0].id


async def test_async_stream_is_recorded_and_replayed(aclient, fake):
    stream = await aclient.chat.completions.create(**CHAT, stream=True)
    live = [chunk async for chunk in stream]
    async with await aclient.chat.completions.create(**CHAT, stream=True) as replay:
        assert cache_status(replay) == "hit"
        replayed = [chunk async for chunk in replay]
    assert fake.calls["chat"] == 1
    assert all(isinstance(c, ChatCompletionChunk) for c in replayed)
    assert text_of(replayed) == text_of(live) == "Reply 1: What is the capital of France?"


def test_a_streamed_answer_serves_a_plain_request(client, fake):
    streamed = text_of(client.chat.completions.create(**CHAT, stream=True))
    plain = client.chat.completions.create(**CHAT)
    assert isinstance(plain, ChatCompletion)
    assert cache_status(plain) == "hit"
    assert plain.choices[0].message.content == streamed
    assert plain.choices[0].finish_reason == "stop"
    assert fake.calls["chat"] == 1


def test_a_plain_answer_serves_a_stream_with_usage(client, fake):
    plain = client.chat.completions.create(**CHAT)
    chunks = list(
        client.chat.completions.create(**CHAT, stream=True, stream_options={"include_usage": True})
    )
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert text_of(chunks) == plain.choices[0].message.content
    assert chunks[-1].usage == plain.usage
    assert fake.calls["chat"] == 1


def test_a_stream_abandoned_early_is_not_stored(client, fake):
    stream = client.chat.completions.create(**CHAT, stream=True)
    next(iter(stream))
    stream.close()
    again = client.chat.completions.create(**CHAT)
    assert cache_status(again) == "miss"
    assert fake.calls["chat"] == 2


def test_a_live_stream_works_as_a_context_manager(client, fake):
    with client.chat.completions.create(**CHAT, stream=True) as live:
        assert cache_status(live) == "miss"
        assert live.response.status_code == 200  # the SDK stream's attributes pass through
        text = text_of(live)
    assert text_of(client.chat.completions.create(**CHAT, stream=True)) == text
    assert fake.calls["chat"] == 1


async def test_an_async_stream_closed_early_is_not_stored(aclient, fake):
    async with await aclient.chat.completions.create(**CHAT, stream=True) as live:
        await live.__anext__()
    again = await aclient.chat.completions.create(**CHAT)
    assert cache_status(again) == "miss"
    assert fake.calls["chat"] == 2


def test_a_stream_failing_mid_way_is_not_stored(client, fake):
    fake.stream_error_after = 2
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(**CHAT, stream=True))
    fake.stream_error_after = None
    assert cache_status(client.chat.completions.create(**CHAT)) == "miss"
    assert fake.calls["chat"] == 2


def test_a_stream_cut_before_its_end_is_not_stored(client, fake):
    fake.stream_cut_after = 3  # role and two words, no finish reason, no [DONE]
    assert text_of(client.chat.completions.create(**CHAT, stream=True)) == "Reply 1:"
    fake.stream_cut_after = None
    assert cache_status(client.chat.completions.create(**CHAT)) == "miss"
    assert fake.calls["chat"] == 2


def test_several_choices_survive_stream_and_plain_conversions(client, fake):
    request = {**CHAT, "n": 2}
    live = list(client.chat.completions.create(**request, stream=True))
    plain = client.chat.completions.create(**request)
    assert [c.index for c in plain.choices] == [0, 1]
    for choice in plain.choices:
        expected = "".join(
            part.delta.content or ""
            for chunk in live
            for part in chunk.choices
            if part.index == choice.index
        )
        assert choice.message.content == expected
    assert fake.calls["chat"] == 1


def test_embeddings_are_cached(client, fake):
    first = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    second = client.embeddings.create(input=["a", "b"], model="text-embedding-3-small")
    assert isinstance(second, CreateEmbeddingResponse)
    assert cache_status(second) == "hit"
    assert [d.embedding for d in second.data] == [d.embedding for d in first.data]
    other = client.embeddings.create(model="text-embedding-3-small", input=["a", "c"])
    assert cache_status(other) == "miss"
    assert fake.calls["embeddings"] == 2


async def test_async_embeddings_are_cached(aclient, fake):
    first = await aclient.embeddings.create(model="text-embedding-3-small", input="hello")
    second = await aclient.embeddings.create(model="text-embedding-3-small", input="hello")
    assert cache_status(second) == "hit"
    assert second.data[0].embedding == first.data[0].embedding
    assert fake.calls["embeddings"] == 1


def test_sampled_requests_are_not_cached_unless_the_caller_opts_in(raw, fake, cache):
    client = thrifty.wrap(raw, cache)
    default_temperature = {"model": "gpt-4o-mini", "messages": MESSAGES}
    # Left out, temperature is cached, as by the gateway (one policy: thrifty.policy).
    a = client.chat.completions.create(**default_temperature)
    b = client.chat.completions.create(**default_temperature)
    assert (cache_status(a), cache_status(b)) == ("miss", "hit")
    sampled = {**default_temperature, "temperature": 0.7}
    a = client.chat.completions.create(**sampled)
    b = client.chat.completions.create(**sampled)
    assert cache_status(a) == cache_status(b) == "bypass"
    assert a.choices[0].message.content != b.choices[0].message.content
    assert fake.calls["chat"] == 3

    opted_in = {**sampled, "extra_body": {"thrifty": {"cache_temperature": True}}}
    client.chat.completions.create(**opted_in)
    assert cache_status(client.chat.completions.create(**opted_in)) == "hit"

    everything = thrifty.wrap(raw, cache, cache_temperature=True)
    everything.chat.completions.create(**default_temperature, temperature=0.9)
    assert (
        cache_status(everything.chat.completions.create(**default_temperature, temperature=0.9))
        == "hit"
    )
    assert fake.calls["chat"] == 5
    assert all("thrifty" not in body for body in fake.requests)


def test_stats_count_tokens_and_dollars_saved(client, cache, fake):
    first = client.chat.completions.create(**CHAT)
    client.chat.completions.create(**CHAT)
    client.chat.completions.create(**CHAT)
    usage = first.usage
    price = cache.prices.get("gpt-4o-mini")
    one_call = (
        usage.prompt_tokens * price.input_cost_per_token
        + usage.completion_tokens * price.output_cost_per_token
    )
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (2, 1)
    assert stats.tokens_saved == 2 * usage.total_tokens
    assert stats.usd_saved == pytest.approx(2 * one_call)
    assert stats.usd_saved > 0


def test_streams_without_usage_are_counted_with_tiktoken(client, cache):
    list(client.chat.completions.create(**CHAT, stream=True))
    client.chat.completions.create(**CHAT)
    assert cache.stats().tokens_saved > 0


class FailingStore(MemoryStore):
    """A backend that fails on every read and write."""

    def get(self, key):
        raise BackendError("down")

    def set(self, entry):
        raise BackendError("down")

    def add_counters(self, namespace, counters):
        raise BackendError("down")


def test_a_failing_backend_still_answers(raw):
    cache = thrifty.Cache(FailingStore())
    client = thrifty.wrap(raw, cache)
    answer = client.chat.completions.create(**CHAT)
    assert answer.choices[0].message.content.startswith("Reply 1")
    assert text_of(client.chat.completions.create(**CHAT, stream=True)).startswith("Reply 2")
    assert client.embeddings.create(model="text-embedding-3-small", input="x").data
    assert cache.stats().errors > 0


def test_cache_modes_per_call(client, fake):
    def mode(name):
        return {"extra_body": {"thrifty": {"cache": name}}}

    assert cache_status(client.chat.completions.create(**CHAT, **mode("no-store"))) == "miss"
    assert cache_status(client.chat.completions.create(**CHAT, **mode("no-cache"))) == "bypass"
    assert cache_status(client.chat.completions.create(**CHAT)) == "miss"  # nothing stored yet
    refreshed = client.chat.completions.create(**CHAT, **mode("refresh"))
    assert cache_status(refreshed) == "refresh"
    hit = client.chat.completions.create(**CHAT)
    assert hit.choices[0].message.content == refreshed.choices[0].message.content
    assert fake.calls["chat"] == 4
    with pytest.raises(ConfigError):
        client.chat.completions.create(**CHAT, **mode("sometimes"))


def test_bad_per_call_options_are_rejected_and_odd_temperatures_bypass(client, fake):
    with pytest.raises(ConfigError):
        client.chat.completions.create(**CHAT, extra_body={"thrifty": {"ttl": -1}})
    with pytest.raises(ConfigError):
        client.chat.completions.create(**CHAT, extra_body={"thrifty": "no-cache"})
    odd = client.chat.completions.create(**{**CHAT, "temperature": "0"})
    assert cache_status(odd) == "bypass"
    assert fake.calls["chat"] == 1


def test_wrap_without_a_cache_uses_the_default_sqlite_file(raw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    client = thrifty.wrap(raw)
    client.chat.completions.create(**CHAT)
    assert cache_status(client.chat.completions.create(**CHAT)) == "hit"
    assert (tmp_path / ".thrifty" / "cache.db").exists()
    client.thrifty_cache.close()


def test_namespaces_do_not_share_entries(raw, cache):
    thrifty.wrap(raw, cache, namespace="a").chat.completions.create(**CHAT)
    other = thrifty.wrap(raw, cache, namespace="b").chat.completions.create(**CHAT)
    assert cache_status(other) == "miss"


def test_identical_concurrent_requests_reach_upstream_once(cache):
    with (
        FakeOpenAI(delay=0.3) as slow,
        openai.OpenAI(base_url=slow.base_url, api_key="test", max_retries=0) as raw,
    ):
        client = thrifty.wrap(raw, cache)
        answers: list[ChatCompletion] = []
        threads = [
            threading.Thread(target=lambda: answers.append(client.chat.completions.create(**CHAT)))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert slow.calls["chat"] == 1
    assert len({a.choices[0].message.content for a in answers}) == 1
    assert sorted(cache_status(a) for a in answers) == ["coalesced"] * 3 + ["miss"]


def test_everything_else_passes_through(client, fake):
    assert [m.id for m in client.models.list()] == ["fake"]
    assert client.api_key == "test"
    assert client.chat.completions.with_raw_response is not None
    shorter = client.with_options(timeout=5)
    shorter.chat.completions.create(**CHAT)
    assert cache_status(shorter.chat.completions.create(**CHAT)) == "hit"


def test_wrap_rejects_what_is_not_a_client(raw, cache):
    with pytest.raises(ConfigError):
        thrifty.wrap(object(), cache)
    with pytest.raises(ConfigError):
        thrifty.wrap(raw, cache={})


def test_a_semantic_cache_answers_a_reworded_question(raw, fake):
    from thrifty.semantic.embedder import HashingEmbedder

    cache = thrifty.Cache(
        "memory://", semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.8)
    )
    client = thrifty.wrap(raw, cache)
    client.chat.completions.create(**CHAT)
    reworded = [{"role": "user", "content": "what is the capital of france"}]
    plain = client.chat.completions.create(**{**CHAT, "messages": reworded})
    streamed = client.chat.completions.create(**{**CHAT, "messages": reworded}, stream=True)
    assert cache_status(plain) == cache_status(streamed) == "semantic_hit"
    assert text_of(streamed) == plain.choices[0].message.content
    assert fake.calls["chat"] == 1
    assert cache.stats().semantic_hits == 2
