"""Scope keys: what a semantic match must share exactly, and what only the embedding decides."""

from __future__ import annotations

from typing import Any

from thrifty.semantic.scope import semantic_query


def chat(question: str = "How do I reset my password?", **over: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You are a support bot."},
            {"role": "user", "content": question},
        ],
    }
    request.update(over)
    return request


def scope(request: dict[str, Any], namespace: str = "default", kind: str = "chat") -> str:
    query = semantic_query(request, namespace, kind)
    assert query is not None
    return query.scope


def test_only_the_last_user_message_is_left_to_the_embedding() -> None:
    query = semantic_query(chat("Where is my order?"))
    assert query is not None and query.text == "Where is my order?"
    assert scope(chat("Where is my order?")) == scope(chat("Totally different words"))


def test_everything_else_is_an_exact_filter() -> None:
    base = scope(chat())
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    variants = [
        chat(model="gpt-4o"),
        chat(temperature=0.5),
        chat(max_tokens=10),
        chat(tools=tools),
        chat(response_format={"type": "json_object"}),
        chat(messages=[{"role": "system", "content": "You are a pirate."},
                       {"role": "user", "content": "How do I reset my password?"}]),
        chat(messages=[{"role": "user", "content": "How do I reset my password?"}]),
        chat(messages=[{"role": "system", "content": "You are a support bot."},
                       {"role": "user", "content": "Hi"},
                       {"role": "assistant", "content": "Hello!"},
                       {"role": "user", "content": "How do I reset my password?"}]),
    ]  # fmt: skip
    scopes = [scope(v) for v in variants]
    assert base not in scopes
    assert len(set(scopes)) == len(scopes)
    assert scope(chat(), namespace="tenant-b") != base
    assert scope({"model": "m", "prompt": "hi"}, kind="completion") != scope(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    )


def test_canonicalization_carries_over() -> None:
    reordered = {"temperature": 0.0, "messages": chat()["messages"], "model": "gpt-4o-mini"}
    with_defaults = chat(top_p=1, n=1, stream=True, user="u-42")
    parts = chat()
    parts["messages"][0]["content"] = [{"type": "text", "text": "You are a support bot."}]
    assert scope(reordered) == scope(with_defaults) == scope(parts) == scope(chat())


def test_requests_without_a_single_question_are_exact_only() -> None:
    tool_last = chat()
    tool_last["messages"] = [*tool_last["messages"], {"role": "tool", "content": "42",
                                                      "tool_call_id": "c1"}]  # fmt: skip
    image = chat()
    image["messages"][1]["content"] = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    assert semantic_query(tool_last) is None
    assert semantic_query(image) is None
    assert semantic_query(chat("   ")) is None
    assert semantic_query({"model": "m", "messages": []}) is None
    assert semantic_query({"model": "m", "input": "x"}, kind="embeddings") is None
    assert semantic_query({"model": "m", "prompt": ["a", "b"]}, kind="completion") is None
    completion = semantic_query({"model": "m", "prompt": ["one prompt"]}, kind="completion")
    assert completion is not None and completion.text == "one prompt"
