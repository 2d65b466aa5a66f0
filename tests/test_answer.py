"""thrifty.answer: the one stored shape, read back with validation (old shapes still read)."""

from __future__ import annotations

import pytest

from thrifty.answer import Endpoint, read_answer, stored_answer, stored_stream
from thrifty.integrations._streams import chunks_from_completion

CHAT = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                     "finish_reason": "stop"}]}  # fmt: skip
TEXT = {"id": "t1", "object": "text_completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "text": "hi", "finish_reason": "stop"}]}  # fmt: skip
EMBEDDINGS = {"object": "list", "model": "m",
              "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}]}  # fmt: skip
BODIES = {Endpoint.CHAT: CHAT, Endpoint.COMPLETION: TEXT, Endpoint.EMBEDDINGS: EMBEDDINGS}


@pytest.mark.parametrize("endpoint", list(Endpoint))
def test_an_answer_is_stored_as_its_body_and_read_back(endpoint) -> None:
    body = BODIES[endpoint]
    assert stored_answer(body) is body
    assert read_answer(endpoint, stored_answer(body)) == body
    assert read_answer(str(endpoint), body) == body


@pytest.mark.parametrize("endpoint", list(Endpoint))
def test_a_body_of_another_endpoint_is_not_served(endpoint) -> None:
    for other, body in BODIES.items():
        if other is not endpoint:
            assert read_answer(endpoint, body) is None
    for junk in (None, "hi", [], {}, {"choices": "x"}, {"choices": [{"index": 0}]}):
        assert read_answer(endpoint, junk) is None


def test_a_stream_is_stored_as_the_completion_it_assembles_into() -> None:
    chunks = chunks_from_completion(CHAT, include_usage=False)
    stored = stored_stream(chunks)
    assert stored["object"] == "chat.completion"
    assert stored["choices"][0]["message"]["content"] == "hi"
    assert read_answer(Endpoint.CHAT, stored) == stored


def test_old_wrapped_entries_are_read_unwrapped() -> None:
    assert read_answer(Endpoint.CHAT, {"completion": CHAT}) == CHAT
    assert read_answer(Endpoint.COMPLETION, {"text_completion": TEXT}) == TEXT
    assert read_answer(Endpoint.EMBEDDINGS, {"embeddings": EMBEDDINGS}) == EMBEDDINGS
    chunks = chunks_from_completion(CHAT, include_usage=False)
    old_stream = read_answer(Endpoint.CHAT, {"chunks": chunks})
    assert old_stream is not None and old_stream["choices"][0]["message"]["content"] == "hi"
    assert read_answer(Endpoint.CHAT, {"embeddings": EMBEDDINGS}) is None
    assert read_answer(Endpoint.CHAT, {"completion": TEXT}) is None
