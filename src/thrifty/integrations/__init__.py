"""Drop-ins for other libraries: OpenAI SDK clients, LangChain, any model's inference.

Submodules load on first use (``thrifty.integrations.langchain``), each importing its library
only then.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SUBMODULES = frozenset({"langchain", "model", "openai"})


def __getattr__(name: str) -> ModuleType:
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
