"""``/v1/embeddings`` from the local embedder (all-MiniLM-L6-v2 on onnxruntime), no upstream.

The semantic extra already installs the embedder the cache uses; serving it as a model lets the
default setup answer an embeddings request (a RAG pipeline's first call) with nothing configured.
It embeds on a worker thread: onnxruntime releases the GIL, so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from typing import Any

from thrifty.errors import ConfigError, ProviderError
from thrifty.providers.base import Provider

#: The names (after ``thrifty/``) that select this provider in ``litellm_params.model``.
EMBED_MODEL_NAMES = frozenset({"local-embed", "minilm", "all-minilm-l6-v2"})


class LocalEmbeddingProvider(Provider):
    """OpenAI's embeddings response shape over :class:`~thrifty.semantic.MiniLMEmbedder`.

    The model is loaded on the first request (the gateway starts without it, and without the
    semantic extra it answers 503 saying how to install it). Token ids as ``input`` and
    ``dimensions`` other than the model's are refused with a 400: the embedder reads text and
    has one width.
    """

    name = "local-embed"
    gen_ai_system = "thrifty"

    def __init__(self) -> None:
        self._embedder: Any = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        with self._lock:
            if self._embedder is None:
                from thrifty.semantic.embedder import MiniLMEmbedder

                self._embedder = MiniLMEmbedder(cache_size=0)
            return self._embedder

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        raise ConfigError(f"{body.get('model')!r} is an embedding model: use /v1/embeddings")

    def chat_stream(self, body: dict[str, Any]) -> Any:
        raise ConfigError(f"{body.get('model')!r} is an embedding model: use /v1/embeddings")

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = _texts(body.get("input"))
        model = await asyncio.to_thread(self._model)
        dimensions = body.get("dimensions")
        if dimensions is not None and dimensions != model.dim:
            raise ConfigError(f"dimensions: this model has {model.dim}, not {dimensions}")
        vectors, tokens = await asyncio.to_thread(_embed, model, texts)
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(row.tobytes()).decode()
                if as_base64
                else row.tolist(),
            }
            for i, row in enumerate(vectors)
        ]
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", self.name),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "created": int(time.time()),
        }

    async def aclose(self) -> None:
        self._embedder = None


def _texts(value: Any) -> list[str]:
    """The request's ``input`` as a list of strings (token ids are refused)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, list) and not value:
        raise ConfigError("input: give at least one text")
    raise ConfigError("input: this model embeds text; token ids are not accepted")


def _embed(model: Any, texts: list[str]) -> tuple[Any, int]:
    try:
        vectors = model.embed(texts)
    except Exception as exc:  # an onnxruntime failure is the provider's, not the client's
        raise ProviderError(f"the local embedder failed: {exc}") from exc
    return vectors, model.count_tokens(texts)
