"""mistral.rs's own parts of the local model: it runs with no network, quietly, and keeps
``response_format: json_object``. The shared Provider contract is in tests/test_local_runtime.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from thrifty.providers.mistralrs_local import MistralRsProvider

pytestmark = pytest.mark.slow

OFFLINE_SCRIPT = """
import asyncio
from thrifty.providers.local import local_provider

provider = local_provider()
body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0}
answer = asyncio.run(provider.chat(body))
print(type(provider).__name__, answer["usage"]["completion_tokens"])
"""


def no_network_prefix() -> list[str]:
    """``unshare -rn``: a new network namespace with no interface up (so no host is reachable)."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rn", "true"], check=False).returncode:
        pytest.skip("unshare -rn (a network namespace) is not available on this machine")
    return [unshare, "-rn"]


@pytest.fixture(scope="module")
def provider() -> Iterator[MistralRsProvider]:
    model = MistralRsProvider()
    yield model
    asyncio.run(model.aclose())


def test_loads_and_answers_with_the_network_unreachable(tmp_path: Path) -> None:
    """Nothing is fetched from a hub: the GGUF's own tokenizer and template are used, with an
    empty Hugging Face cache, in a namespace where no address outside the process answers."""
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "THRIFTY_LOCAL_RUNTIME": "mistralrs",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    env.pop("RUST_LOG", None)
    done = subprocess.run(
        [*no_network_prefix(), sys.executable, "-c", OFFLINE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    name, tokens = done.stdout.split()
    assert name == "MistralRsProvider"
    assert int(tokens) > 0
    assert " INFO " not in done.stderr  # mistral.rs's load log stays below WARN by default
    assert not (tmp_path / "hf").exists()


async def test_json_object_answers_start_a_json_object(provider: MistralRsProvider) -> None:
    response = await provider.chat(
        {
            "messages": [{"role": "user", "content": "Describe a cat."}],
            "max_tokens": 12,
            "temperature": 0,
            "response_format": {"type": "json_object"},
        }
    )
    assert response["choices"][0]["message"]["content"].lstrip().startswith("{")


async def test_stop_strings_the_runtime_misses_still_stop(provider: MistralRsProvider) -> None:
    """mistral.rs 0.9 lets ``["your"]`` through for this prompt; the provider cuts it."""
    body = {
        "messages": [{"role": "user", "content": "How do I reset my password?"}],
        "max_tokens": 12,
        "temperature": 0,
        "stop": "your",
    }
    whole = await provider.chat({**body, "stop": None})
    assert "your" in whole["choices"][0]["message"]["content"]
    stopped = await provider.chat(body)
    text = stopped["choices"][0]["message"]["content"]
    assert whole["choices"][0]["message"]["content"].startswith(text)
    assert "your" not in text
    assert stopped["choices"][0]["finish_reason"] == "stop"
    chunks = [c async for c in provider.chat_stream({**body, "stream": True})]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
