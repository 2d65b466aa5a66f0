"""Embedders: parity of the onnxruntime MiniLM with sentence-transformers, the LRU, batching,
the OpenAI-compatible endpoint (through an injected mock transport), the hashing embedder."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from thrifty.errors import ConfigError, ProviderError, ProviderUnavailableError
from thrifty.semantic.embedder import (
    HashingEmbedder,
    MiniLMEmbedder,
    OpenAIEmbedder,
    make_embedder,
)

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_minilm_matches_sentence_transformers(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(REFERENCE["texts"])
    reference = np.asarray(REFERENCE["vectors"], dtype=np.float32)
    assert vectors.shape == (len(REFERENCE["texts"]), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() > 0.995, cosines  # int8 weights: 0.9992 measured, fp32 torch is 1.0


def test_minilm_ranks_paraphrases_above_unrelated(minilm: MiniLMEmbedder) -> None:
    a, b, c = minilm.embed(
        ["How do I reset my password?", "I forgot my password, how can I change it?",
         "What is the weather in Paris tomorrow?"]
    )  # fmt: skip
    assert a @ b > 0.7
    assert a @ c < 0.3


def test_batch_equals_single_despite_padding(minilm: MiniLMEmbedder) -> None:
    texts = ["short", "a considerably longer sentence that forces padding of the short one"]
    batched = minilm._embed(texts)
    single = np.stack([minilm._embed([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_repeated_text_comes_from_the_lru() -> None:
    embedder = HashingEmbedder(cache_size=2)
    first = embedder.embed(["a b", "a b", "c d"])
    assert embedder.cache_misses == 2  # duplicates within a call are embedded once
    again = embedder.embed(["a b"])
    assert embedder.cache_hits == 1
    np.testing.assert_array_equal(first[0], again[0])
    embedder.embed(["e f", "g h"])  # evicts both older texts (size 2)
    embedder.embed(["a b"])
    assert embedder.cache_hits == 1


def test_long_text_is_truncated_not_rejected(minilm: MiniLMEmbedder) -> None:
    vec = minilm.embed_one("word " * 2000)
    assert vec.shape == (384,)
    assert np.isfinite(vec).all()


def test_missing_model_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderUnavailableError, match="not found"):
        MiniLMEmbedder(tmp_path / "absent.onnx")


def _endpoint(handler):  # type: ignore[no-untyped-def]
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_openai_embedder_batches_and_normalizes() -> None:
    calls: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(body)
        assert request.headers["authorization"] == "Bearer sk-test"
        data = [
            {"index": i, "embedding": [float(len(t)), 1.0, 0.0], "object": "embedding"}
            for i, t in reversed(list(enumerate(body["input"])))  # out of order on purpose
        ]
        return httpx.Response(200, json={"data": data, "model": body["model"]})

    embedder = OpenAIEmbedder(
        "emb", base_url="http://127.0.0.1:9/v1", api_key="sk-test", client=_endpoint(handler),
        batch_size=2,
    )  # fmt: skip
    vectors = embedder.embed(["a", "bbb", "cc", "a"])
    assert embedder.dim == 3
    assert vectors.shape == (4, 3)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(vectors[0], vectors[3])
    expected = np.array([3.0, 1.0, 0.0]) / np.sqrt(10)
    np.testing.assert_allclose(vectors[1], expected, atol=1e-6)
    assert all(len(c["input"]) <= 2 for c in calls)
    assert embedder.name == "openai:emb"


def test_openai_embedder_errors_are_typed() -> None:
    failing = OpenAIEmbedder(
        "emb", base_url="http://127.0.0.1:9/v1", dim=3,
        client=_endpoint(lambda r: httpx.Response(500, text="boom")),
    )  # fmt: skip
    with pytest.raises(ProviderError, match="500"):
        failing.embed(["x"])
    malformed = OpenAIEmbedder(
        "emb", base_url="http://127.0.0.1:9/v1", dim=3,
        client=_endpoint(lambda r: httpx.Response(200, json={"nope": 1})),
    )  # fmt: skip
    with pytest.raises(ProviderError, match="malformed"):
        malformed.embed(["x"])

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    down = OpenAIEmbedder("emb", base_url="http://127.0.0.1:9/v1", dim=3, client=_endpoint(refuse))
    with pytest.raises(ProviderUnavailableError):
        down.embed(["x"])


def test_hashing_embedder_is_deterministic_and_lexical() -> None:
    one, two = HashingEmbedder(), HashingEmbedder()
    a = one.embed_one("reset my password")
    np.testing.assert_array_equal(a, two.embed_one("reset my password"))
    assert a @ one.embed_one("reset my password please") > a @ one.embed_one("weather in Paris")


def test_make_embedder() -> None:
    hashing = HashingEmbedder()
    assert make_embedder(hashing) is hashing
    assert isinstance(make_embedder("hashing", dim=32), HashingEmbedder)
    with pytest.raises(ConfigError, match="unknown embedder"):
        make_embedder("word2vec")
