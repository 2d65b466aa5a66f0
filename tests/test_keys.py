"""Request keys: blind to what leaves the answer alone, sensitive to what changes it."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.keys import DEFAULT_PARAMS, canonical_request, request_key, text_key

texts = st.text(min_size=0, max_size=40)
roles = st.sampled_from(["system", "user", "assistant"])
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": texts}), min_size=1, max_size=4
)
sampling = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2, allow_nan=False).filter(lambda t: t != 1),
        "top_p": st.floats(0, 0.99, allow_nan=False),
        "max_tokens": st.integers(1, 4096),
        "seed": st.integers(0, 2**31),
        "n": st.integers(2, 5),
        "stop": st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3),
        "presence_penalty": st.floats(0.1, 2, allow_nan=False),
        "frequency_penalty": st.floats(0.1, 2, allow_nan=False),
    },
)
models = st.sampled_from(["gpt-4o", "gpt-4o-mini", "local", "claude-3-5-sonnet"])


@st.composite
def requests(draw):  # type: ignore[no-untyped-def]
    body = {"model": draw(models), "messages": draw(messages), **draw(sampling)}
    if draw(st.booleans()):
        body["response_format"] = {"type": "json_object"}
    if draw(st.booleans()):
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": draw(st.text("abc", min_size=1)), "parameters": {}},
            }
        ]
    return body


def _shuffled(value, rnd):  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _shuffled(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rnd) for v in value]
    return value


@settings(max_examples=200)
@given(requests(), st.randoms())
def test_key_ignores_dict_order_and_json_whitespace(body, rnd):  # type: ignore[no-untyped-def]
    reordered = _shuffled(body, rnd)
    reparsed = json.loads(json.dumps(reordered, indent=rnd.choice([None, 1, 4])))
    assert request_key(body) == request_key(reordered) == request_key(reparsed)


@settings(max_examples=200)
@given(requests(), st.sets(st.sampled_from(sorted(DEFAULT_PARAMS)), max_size=6))
def test_key_ignores_explicit_defaults(body, names):  # type: ignore[no-untyped-def]
    with_defaults = dict(body)
    for name in names:
        with_defaults.setdefault(name, DEFAULT_PARAMS[name])
    assert request_key(body) == request_key(with_defaults)


@settings(max_examples=200)
@given(requests())
def test_key_ignores_transport_options(body):  # type: ignore[no-untyped-def]
    noisy = {
        **body,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-1",
        "timeout": 30,
        "metadata": {"trace": "x"},
    }
    assert request_key(body) == request_key(noisy)


def test_int_and_float_spellings_agree() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert request_key({**base, "temperature": 0}) == request_key({**base, "temperature": 0.0})
    assert request_key({**base, "max_tokens": 5}) == request_key({**base, "max_tokens": 5.0})


def test_text_parts_and_plain_content_agree() -> None:
    plain = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    parts = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
    }
    assert request_key(plain) == request_key(parts)


# Each mutation changes something a model would answer differently.
MUTATIONS = {
    "model": lambda b: {**b, "model": b["model"] + "-x"},
    "system prompt": lambda b: {
        **b,
        "messages": [{"role": "system", "content": "be terse"}, *b["messages"]],
    },
    "last message": lambda b: {
        **b,
        "messages": [
            *b["messages"][:-1],
            {**b["messages"][-1], "content": b["messages"][-1]["content"] + "?"},
        ],
    },
    "role": lambda b: {
        **b,
        "messages": [*b["messages"][:-1], {**b["messages"][-1], "role": "tool"}],
    },
    "temperature": lambda b: {**b, "temperature": b.get("temperature", 1) + 0.5},
    "top_p": lambda b: {**b, "top_p": b.get("top_p", 1) / 2 + 0.001},
    "max_tokens": lambda b: {**b, "max_tokens": b.get("max_tokens", 7) + 1},
    "seed": lambda b: {**b, "seed": b.get("seed", 0) + 1},
    "n": lambda b: {**b, "n": b.get("n", 1) + 1},
    "stop": lambda b: {**b, "stop": [*b.get("stop", []), "END"]},
    "response_format": lambda b: {
        **b,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
    },
    "tools": lambda b: {
        **b,
        "tools": [*b.get("tools", []), {"type": "function", "function": {"name": "zz"}}],
    },
    "logprobs": lambda b: {**b, "logprobs": not b.get("logprobs", False)},
}


@settings(max_examples=100)
@given(requests(), st.sampled_from(sorted(MUTATIONS)))
def test_key_changes_with_anything_that_changes_the_answer(body, mutation):  # type: ignore[no-untyped-def]
    changed = MUTATIONS[mutation](body)
    assert canonical_request(changed) != canonical_request(body)
    assert request_key(changed) != request_key(body)


@given(requests(), st.text(min_size=1, max_size=10), st.text(min_size=1, max_size=10))
def test_namespaces_never_share_keys(body, ns_a, ns_b):  # type: ignore[no-untyped-def]
    if ns_a != ns_b:
        assert request_key(body, ns_a) != request_key(body, ns_b)


def test_endpoint_kind_is_part_of_the_key() -> None:
    body = {"model": "m", "input": "hello"}
    assert request_key(body, kind="embeddings") != request_key(body, kind="completions")


def test_text_key_separates_parts() -> None:
    assert text_key("ab", "c") != text_key("a", "bc")
    assert text_key("a", "b", namespace="x") != text_key("a", "b", namespace="y")


def test_text_key_is_pinned() -> None:
    """Entries written by earlier releases must stay reachable: the digest never changes."""
    key = text_key("Human: hi", "{'model_name': 'gpt-4o-mini'}", namespace="t1")
    assert key == "975314a847008d3081f009097b1ce87a14795e28b6312e5c3baad8b215a619d6"
