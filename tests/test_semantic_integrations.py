"""Semantic hits through LangChain's cache (chat models and LLMs), within exact scopes."""

from __future__ import annotations

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

import thrifty
from thrifty.cache import SemanticSettings
from thrifty.integrations.langchain import ThriftyCache, semantic_request
from thrifty.semantic.embedder import HashingEmbedder


@pytest.fixture
def cache():
    with thrifty.Cache(
        "memory://", semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.6)
    ) as c:
        yield c


@pytest.fixture
def llm_cache(cache):
    adapter = ThriftyCache(cache)
    set_llm_cache(adapter)
    yield adapter
    set_llm_cache(None)


def test_chat_prompt_becomes_a_scoped_request():
    messages = [SystemMessage("You are terse."), HumanMessage("hi"), AIMessage("hello"),
                HumanMessage("How do I reset my password?")]  # fmt: skip
    request, kind = semantic_request(dumps(messages), "llm-settings")
    assert kind == "chat"
    assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant", "user"]
    assert request["messages"][-1]["content"] == "How do I reset my password?"
    assert request["model"] == "llm-settings"
    assert semantic_request("plain prompt", "x") == ({"model": "x", "prompt": "plain prompt"},
                                                      "completion")  # fmt: skip
    assert semantic_request("[not json", "x")[1] == "completion"


def test_reworded_chat_question_is_served(llm_cache, cache):
    chat = FakeListChatModel(responses=["Use the reset link.", "fresh answer"])
    assert chat.invoke("How do I reset my password?").content == "Use the reset link."
    assert chat.invoke("how do i reset my password please").content == "Use the reset link."
    assert cache.stats().semantic_hits == 1
    # the same words with a different system prompt are another scope
    other = chat.invoke([SystemMessage("You are a pirate."),
                         HumanMessage("How do I reset my password?")])  # fmt: skip
    assert other.content == "fresh answer"


async def test_llm_prompts_and_async(llm_cache, cache):
    llm = FakeListLLM(responses=["four", "other"])
    assert await llm.ainvoke("What is two plus two?") == "four"
    assert await llm.ainvoke("what is two plus two") == "four"
    assert cache.stats().semantic_hits == 1


def test_exact_only_cache_does_not_parse_prompts():
    with thrifty.Cache("memory://") as exact:
        adapter = ThriftyCache(exact)
        assert adapter._semantic("[{}]", "x") == {}
