"""Property: whatever JSON a client sends, the gateway never answers 5xx for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from _gateway import fake_config
from thrifty.server.app import create_app
from thrifty.testing.fake_openai import FakeOpenAI

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
messages = st.one_of(
    json_values,
    st.lists(
        st.fixed_dictionaries(
            {"role": st.one_of(st.sampled_from(["user", "system", "assistant"]), json_values)},
            optional={"content": st.one_of(st.text(max_size=20), json_values)},
        ),
        max_size=3,
    ),
)
QUIET = [HealthCheck.function_scoped_fixture]  # the module-scoped server is meant to be shared
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.sampled_from(["gpt-4o-mini", "unknown"]), json_values),
        "messages": messages,
        "temperature": json_values,
        "n": json_values,
        "max_tokens": json_values,
        "stream": st.one_of(st.booleans(), json_values),
        "thrifty": json_values,
        "extra": json_values,
    },
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with FakeOpenAI() as fake:
        app = create_app(fake_config(fake.base_url, router_settings={"num_retries": 0}))
        with TestClient(app) as test_client:
            yield test_client


def assert_client_error_or_ok(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@settings(max_examples=150, deadline=None, suppress_health_check=QUIET)
@given(body=bodies)
def test_chat_never_answers_5xx(client: TestClient, body: dict[str, Any]) -> None:
    assert_client_error_or_ok(client.post("/v1/chat/completions", json=body))


@settings(max_examples=60, deadline=None, suppress_health_check=QUIET)
@given(body=json_values)
def test_any_json_to_any_route_never_answers_5xx(client: TestClient, body: Any) -> None:
    for route in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        assert_client_error_or_ok(client.post(route, json=body))
