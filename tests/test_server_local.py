"""With no config the gateway serves the embedded local model (real llama.cpp generation)."""

from __future__ import annotations

import base64

import httpx
import numpy as np
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
        assert [m.id for m in sdk.models.list().data] == ["local", "smollm2", "local-embed"]
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


def test_any_model_name_is_answered_by_the_local_model_and_embeddings_by_the_embedder() -> None:
    """A newcomer's copied snippet asks for ``gpt-4o-mini``: the default setup answers it with
    the local model (the catch-all entry, named in ``X-Thrifty-Route``), and serves
    ``/v1/embeddings`` from the local embedder."""
    data = default_config().model_dump()
    data["cache"]["url"] = "memory://"
    app = create_app(parse_config(data))
    with serving(app) as url:
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        raw = sdk.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=4,
            temperature=0,
        )
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-thrifty-route"] == "*#0"
        embedded = sdk.embeddings.create(model="local-embed", input=["a cat", "a dog", "a cat"])
        vectors = [item.embedding for item in embedded.data]
        assert len(vectors) == 3 and len(vectors[0]) == 384
        assert vectors[0] == vectors[2] and vectors[0] != vectors[1]
        assert embedded.usage.prompt_tokens > 0
        as_b64 = sdk.embeddings.create(model="local-embed", input="a cat", encoding_format="base64")
        decoded = np.frombuffer(base64.b64decode(str(as_b64.data[0].embedding)), np.float32)
        assert np.allclose(decoded, vectors[0], atol=1e-6)
        for bad in ({"input": [1, 2, 3]}, {"input": "x", "dimensions": 8}, {"input": []}):
            refused = httpx.post(f"{url}/v1/embeddings", json={"model": "local-embed", **bad})
            assert refused.status_code == 400, bad
            assert "message" in refused.json()["error"]
        # An unknown embedding model: the catch-all chat model does not embed, so a 404 that
        # lists what is served (the embedder included).
        unknown = httpx.post(
            f"{url}/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"}
        )
        assert unknown.status_code == 404
        assert "local-embed" in unknown.json()["error"]["message"]
        chat_to_embedder = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "local-embed", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat_to_embedder.status_code == 400
