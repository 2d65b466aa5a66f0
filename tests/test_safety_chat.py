"""PII in OpenAI-shaped bodies: every text field is scanned, redaction copies and never mutates."""

from __future__ import annotations

import copy
from typing import Any

from thrifty.safety.pii import (
    PIIDetector,
    find_in_request,
    find_in_response,
    redact_request,
    redact_response,
    request_has_pii,
    request_texts,
    response_has_pii,
    response_texts,
)

DETECTOR = PIIDetector()

REQUEST: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a support agent. Contact: help@shop.example"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "My card 4111 1111 1111 1111 was charged twice"},
                {"type": "image_url", "image_url": {"url": "https://img.example/1.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"phone": "+44 20 7946 0958"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "no account found"},
    ],
    "temperature": 0,
}


def test_request_texts_cover_strings_parts_and_tool_arguments() -> None:
    assert request_texts(REQUEST) == [
        "You are a support agent. Contact: help@shop.example",
        "My card 4111 1111 1111 1111 was charged twice",
        "no account found",
        '{"phone": "+44 20 7946 0958"}',
    ]
    assert request_texts({"prompt": ["a", "b"], "input": "c"}) == ["a", "b", "c"]


def test_request_scanning() -> None:
    assert request_has_pii(DETECTOR, REQUEST)
    assert [f.type for f in find_in_request(DETECTOR, REQUEST)] == ["email", "card", "phone"]
    clean = {"messages": [{"role": "user", "content": "How do I reset my password?"}]}
    assert not request_has_pii(DETECTOR, clean)
    assert not request_has_pii(DETECTOR, {"model": "m"})


def test_redact_request_copies_and_keeps_the_shape() -> None:
    before = copy.deepcopy(REQUEST)
    redacted = redact_request(DETECTOR, REQUEST)
    assert before == REQUEST  # the caller's body is untouched
    messages = redacted["messages"]
    assert messages[0]["content"] == "You are a support agent. Contact: [EMAIL]"
    assert messages[1]["content"][0] == {"type": "text", "text": "My card [CARD] was charged twice"}
    assert messages[1]["content"][1] is REQUEST["messages"][1]["content"][1]
    assert messages[2]["tool_calls"][0]["function"]["arguments"] == '{"phone": "[PHONE]"}'
    assert messages[3] is REQUEST["messages"][3]  # unchanged parts are shared, not copied
    assert redacted["temperature"] == 0
    assert not request_has_pii(DETECTOR, redacted)


def test_a_clean_body_comes_back_as_the_same_object() -> None:
    body = {"messages": [{"role": "user", "content": "hello"}], "prompt": "hi"}
    assert redact_request(DETECTOR, body) is body


def test_completion_prompts_and_embedding_inputs() -> None:
    body = {"prompt": ["fine", "mail me: a@b.example"], "input": "card 5555555555554444"}
    redacted = redact_request(DETECTOR, body)
    assert redacted == {"prompt": ["fine", "mail me: [EMAIL]"], "input": "card [CARD]"}


RESPONSE: dict[str, Any] = {
    "id": "x",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "We will call you on (415) 555-2671."},
            "finish_reason": "stop",
        },
        {"index": 1, "text": "IBAN DE89370400440532013000 noted"},
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 5},
}


def test_response_scanning_and_redaction() -> None:
    assert response_texts(RESPONSE) == [
        "We will call you on (415) 555-2671.",
        "IBAN DE89370400440532013000 noted",
    ]
    assert response_has_pii(DETECTOR, RESPONSE)
    assert [f.type for f in find_in_response(DETECTOR, RESPONSE)] == ["phone", "iban"]
    redacted = redact_response(DETECTOR, RESPONSE)
    assert redacted["choices"][0]["message"]["content"] == "We will call you on [PHONE]."
    assert redacted["choices"][1]["text"] == "IBAN [IBAN] noted"
    assert redacted["usage"] is RESPONSE["usage"]
    assert RESPONSE["choices"][1]["text"].startswith("IBAN DE89")


def test_stream_chunks_and_anthropic_blocks() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "ip 10.1.2.3"}}]}
    assert redact_response(DETECTOR, chunk)["choices"][0]["delta"]["content"] == "ip [IP]"
    anthropic = {"content": [{"type": "text", "text": "reach me at bob@example.org"}]}
    assert redact_response(DETECTOR, anthropic)["content"][0]["text"] == "reach me at [EMAIL]"
    assert not response_has_pii(DETECTOR, {"choices": [{"message": {"content": None}}]})
