"""The LLMLingua-2 adapter: refused with a clear message without a local model folder or the
llmlingua package; with a FAKE llmlingua module, its answers shaped like thrifty.compress's."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from thrifty.compression.llmlingua import LLMLingua2Compressor
from thrifty.errors import ConfigError, ProviderUnavailableError
from thrifty.server.compressing import Compress
from thrifty.server.config import parse_config
from thrifty.server.mechanisms import CompressionSettings
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.pricing import Pricer


class FakePromptCompressor:
    """FAKE llmlingua.PromptCompressor: keeps the first half of each document's words."""

    def __init__(self, model_name: str, use_llmlingua2: bool, device_map: str) -> None:
        assert use_llmlingua2 and device_map == "cpu"
        self.model_name = model_name

    def compress_prompt(self, texts: list[str], rate: float, **_: Any) -> dict[str, Any]:
        kept = [" ".join(t.split()[: max(1, int(len(t.split()) * rate))]) for t in texts]
        return {"compressed_prompt": "\n\n".join(kept), "compressed_prompt_list": kept}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


@pytest.fixture
def fake_llmlingua(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("llmlingua")
    module.PromptCompressor = FakePromptCompressor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llmlingua", module)


def test_absent_folder_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ProviderUnavailableError, match="local model folder"):
        LLMLingua2Compressor(tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"compression\.llmlingua2_model"):
        Compress(
            lambda ctx: None,  # type: ignore[arg-type, return-value]
            settings=CompressionSettings(llmlingua2_model=str(tmp_path / "missing")),
            pricer=Pricer(parse_config({})),
            metrics=GatewayMetrics([]),
        )


def test_missing_package_is_refused_clearly(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llmlingua", None)  # import fails as if not installed
    with pytest.raises(ProviderUnavailableError, match="pip install llmlingua"):
        LLMLingua2Compressor(model_dir)


def test_answers_like_the_builtin_compressor(model_dir: Path, fake_llmlingua: None) -> None:
    compressor = LLMLingua2Compressor(model_dir)
    docs = [
        {"id": "a", "text": "one two three four five six seven eight"},
        "nine ten eleven",
    ]
    result = compressor.compress("q?", docs, ratio=0.5)
    assert [d.id for d in result.documents] == ["a", None]
    assert result.documents[0].text == "one two three four"
    assert result.tokens_after < result.tokens_before
    whole = compressor.compress("q?", docs, ratio=0.5, min_tokens=1000)  # the floor wins
    assert whole.text == "\n\n".join([docs[0]["text"], docs[1]])  # type: ignore[index]
