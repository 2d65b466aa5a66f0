"""ThriftyCache as LangChain's global LLM cache, with LangChain's own fake models."""

from __future__ import annotations

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation

import thrifty
from thrifty.integrations.langchain import (
    ThriftyCache,
    decode_generations,
    encode_generations,
)


@pytest.fixture(params=["memory", "sqlite"])
def cache(request, tmp_path):
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/lc.db"
    with thrifty.Cache(url) as c:
        yield c


@pytest.fixture
def llm_cache(cache):
    adapter = ThriftyCache(cache)
    set_llm_cache(adapter)
    yield adapter
    set_llm_cache(None)


def test_an_llm_answer_is_served_from_the_cache(llm_cache, cache):
    llm = FakeListLLM(responses=["first", "second", "third"])
    assert llm.invoke("What is 2+2?") == "first"
    assert llm.invoke("What is 2+2?") == "first"  # the fake would say "second"
    assert llm.invoke("Another question") == "second"
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (1, 2)


def test_a_chat_answer_is_served_from_the_cache(llm_cache):
    chat = FakeListChatModel(responses=["Paris", "Lyon"])
    first = chat.invoke("Capital of France?")
    second = chat.invoke("Capital of France?")
    assert isinstance(second, AIMessage)
    assert second.content == first.content == "Paris"
    assert chat.invoke("Largest city after Paris?").content == "Lyon"


async def test_async_calls_use_the_cache(llm_cache):
    chat = FakeListChatModel(responses=["one", "two"])
    assert (await chat.ainvoke("hi")).content == "one"
    assert (await chat.ainvoke("hi")).content == "one"
    llm = FakeListLLM(responses=["x", "y"])
    assert await llm.ainvoke("q") == "x"
    assert await llm.ainvoke("q") == "x"


def test_clear_removes_only_langchain_entries(llm_cache, cache):
    cache.set("unrelated", {"keep": True})
    llm = FakeListLLM(responses=["first", "second"])
    llm.invoke("q")
    llm_cache.clear()
    assert llm.invoke("q") == "second"
    assert cache.get("unrelated") == {"keep": True}


async def test_aclear_and_direct_async_api(llm_cache):
    await llm_cache.aupdate("p", "llm", [Generation(text="t")])
    assert [g.text for g in await llm_cache.alookup("p", "llm")] == ["t"]
    assert await llm_cache.alookup("p", "other-llm") is None
    await llm_cache.aclear()
    assert await llm_cache.alookup("p", "llm") is None


def test_generations_round_trip():
    message = AIMessage(
        content="",
        tool_calls=[{"name": "lookup", "args": {"city": "Paris"}, "id": "call_1"}],
        usage_metadata={"input_tokens": 12, "output_tokens": 5, "total_tokens": 17},
        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "tool_calls"},
        id="run-1",
    )
    generations = [
        ChatGeneration(message=message, generation_info={"finish_reason": "tool_calls"}),
        ChatGeneration(message=ToolMessage(content="sunny", tool_call_id="call_1")),
        ChatGeneration(message=HumanMessage(content=[{"type": "text", "text": "hi"}])),
        Generation(text="plain", generation_info={"logprobs": None}),
    ]
    decoded = decode_generations(encode_generations(generations))
    assert [type(g) for g in decoded] == [type(g) for g in generations]
    for before, after in zip(generations, decoded, strict=True):
        assert after.text == before.text
        assert after.generation_info == before.generation_info
    assert decoded[0].message == message
    assert decoded[1].message.tool_call_id == "call_1"
    assert decoded[2].message.content == [{"type": "text", "text": "hi"}]


def test_streamed_chunks_are_stored_as_whole_messages():
    chunk = ChatGenerationChunk(message=AIMessageChunk(content="Hel")) + ChatGenerationChunk(
        message=AIMessageChunk(content="lo")
    )
    (decoded,) = decode_generations(encode_generations([chunk]))
    assert type(decoded) is ChatGeneration
    assert type(decoded.message) is AIMessage
    assert decoded.text == "Hello"


def test_hits_record_tokens_and_dollars_saved(llm_cache, cache):
    message = AIMessage(
        content="Paris",
        usage_metadata={"input_tokens": 1000, "output_tokens": 100, "total_tokens": 1100},
        response_metadata={"model_name": "gpt-4o-mini"},
    )
    llm_cache.update("prompt", "llm", [ChatGeneration(message=message)])
    assert llm_cache.lookup("prompt", "llm")[0].message.content == "Paris"
    price = cache.prices.get("gpt-4o-mini")
    stats = cache.stats()
    assert stats.tokens_saved == 1100
    assert stats.usd_saved == pytest.approx(
        1000 * price.input_cost_per_token + 100 * price.output_cost_per_token
    )


def test_namespaces_keep_adapters_apart(cache):
    a = ThriftyCache(cache, namespace="a")
    b = ThriftyCache(cache, namespace="b")
    a.update("p", "llm", [Generation(text="from a")])
    assert b.lookup("p", "llm") is None
    assert a.lookup("p", "llm")[0].text == "from a"


def test_an_answer_json_cannot_carry_is_skipped_not_raised(llm_cache, caplog):
    import datetime

    llm_cache.update(
        "p", "llm", [Generation(text="t", generation_info={"at": datetime.date.today()})]
    )
    assert llm_cache.lookup("p", "llm") is None
    assert "cannot store" in caplog.text


def test_an_unreadable_entry_is_a_miss(llm_cache, cache):
    llm_cache.update("p", "llm", [Generation(text="t")])
    cache.set(llm_cache._key("p", "llm"), [{"neither": "text nor message"}])
    assert llm_cache.lookup("p", "llm") is None
    assert cache.stats().entries == 0


class SampledChat(FakeListChatModel):
    """LangChain's fake chat model with a ``temperature`` in its llm_string, as real ones have."""

    temperature: float | None = None

    @property
    def _identifying_params(self) -> dict:
        return {**super()._identifying_params, "temperature": self.temperature}


@pytest.mark.parametrize("temperature", [None, 0.0])
def test_a_model_that_does_not_sample_is_cached(llm_cache, temperature):
    chat = SampledChat(responses=["Paris", "Lyon"], temperature=temperature)
    assert chat.invoke("Capital?").content == chat.invoke("Capital?").content == "Paris"


def test_a_sampling_model_bypasses_the_cache_unless_opted_in(cache):
    set_llm_cache(ThriftyCache(cache))
    try:
        chat = SampledChat(responses=["Paris", "Lyon", "Nice"], temperature=0.7)
        assert chat.invoke("Capital?").content == "Paris"
        assert chat.invoke("Capital?").content == "Lyon"  # neither read nor written
        assert cache.stats().entries == 0
        set_llm_cache(ThriftyCache(cache, cache_temperature=True))
        assert chat.invoke("Capital?").content == "Nice"
        assert chat.invoke("Capital?").content == "Nice"
    finally:
        set_llm_cache(None)


def test_temperature_is_read_from_the_llm_string():
    from thrifty.integrations.langchain import temperature_of

    assert temperature_of("[('_type', 'fake'), ('stop', None)]") is None
    assert temperature_of("[('temperature', None)]") is None
    assert temperature_of('{"kwargs": {"temperature": 0.2}}---[("temperature", 0.7)]') == 0.7
    assert temperature_of("[('temperature', 0)]") == 0.0
