"""With no config the gateway serves the embedded local model (real llama.cpp generation)."""

from __future__ import annotations

import httpx
import openai
import pytest

from _gateway import serving
from thrifty.server.app import create_app
from thrifty.server.config import default_config, parse_config

pytestmark = pytest.mark.slow


def test_default_models_answer_through_the_sdk() -> None:
    data = default_config().model_dump()
    data["cache"]["url"] = "memory://"
    app = create_app(parse_config(data))
    with serving(app) as url:
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in sdk.models.list().data] == ["local", "smollm2"]
        question = [{"role": "user", "content": "Name a colour."}]
        first = sdk.chat.completions.with_raw_response.create(
            model="local", messages=question, max_tokens=6, temperature=0
        )
        answer = first.parse()
        assert answer.choices[0].message.content
        assert answer.usage is not None and answer.usage.completion_tokens > 0
        assert first.headers["x-thrifty-cache-status"] == "MISS"
        assert first.headers["x-thrifty-route"] == "local#0"
        again = sdk.chat.completions.with_raw_response.create(
            model="local", messages=question, max_tokens=6, temperature=0
        )
        assert again.headers["x-thrifty-cache-status"] == "HIT"
        streamed = sdk.chat.completions.create(
            model="smollm2", messages=question, max_tokens=6, temperature=0, stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        # The local model has no embeddings: a clear 400, not a 500.
        refused = httpx.post(f"{url}/v1/embeddings", json={"model": "local", "input": "x"})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "unsupported_operation"
        # The local model serves n=1 only: the provider's refusal is a 400.
        many = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "local", "messages": question, "n": 2, "max_tokens": 2},
        )
        assert many.status_code == 400
