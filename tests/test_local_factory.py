"""Which runtime serves the local model, and the stop-string scanner (no model loaded here)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from thrifty.errors import ConfigError, ProviderUnavailableError
from thrifty.providers import local
from thrifty.providers.llamacpp import LlamaCppProvider
from thrifty.providers.local import RUNTIME_ENV, choose_runtime, local_provider
from thrifty.providers.mistralrs_local import MistralRsProvider
from thrifty.providers.stop_strings import StopScanner, cut_at_stop


def only_installed(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        if name in local.RUNTIMES.values():  # installed or not on this machine: as the test says
            return object() if name in modules else None
        return real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(local.importlib.util, "find_spec", find_spec)


def test_prebuilt_runtime_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    only_installed(monkeypatch, "mistralrs", "llama_cpp")
    provider = local_provider(model_name="smol")
    assert isinstance(provider, MistralRsProvider)
    assert provider.model_name == "smol"
    assert provider.runtime == "mistral.rs"


def test_llamacpp_when_asked_or_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    assert isinstance(local_provider(runtime="llamacpp"), LlamaCppProvider)
    assert isinstance(local_provider(runtime="llama.cpp"), LlamaCppProvider)
    monkeypatch.setenv(RUNTIME_ENV, "llamacpp")
    assert isinstance(local_provider("m.gguf"), LlamaCppProvider)
    assert isinstance(local_provider(runtime="mistralrs"), MistralRsProvider)  # argument wins
    monkeypatch.setenv(RUNTIME_ENV, "mistral.rs")
    assert choose_runtime() == "mistralrs"
    monkeypatch.delenv(RUNTIME_ENV)
    only_installed(monkeypatch, "llama_cpp")
    assert choose_runtime() == "llamacpp"
    only_installed(monkeypatch)
    assert choose_runtime() == "mistralrs"  # whose provider then says how to install it


def test_unknown_runtime_names_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUNTIME_ENV, "vllm")
    with pytest.raises(ConfigError, match=rf"'vllm' \(from {RUNTIME_ENV}\).*mistralrs, llamacpp"):
        local_provider()
    with pytest.raises(ConfigError, match="the argument"):
        local_provider(runtime="onnx")


async def test_missing_mistralrs_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mistralrs", None)  # import mistralrs raises ImportError
    provider = local_provider(runtime="mistralrs")
    with pytest.raises(ProviderUnavailableError, match=r"pip install 'thrifty\[local\]'"):
        await provider.chat({"messages": [{"role": "user", "content": "hi"}]})


def test_cut_at_stop_ends_before_the_first_stop_string() -> None:
    assert cut_at_stop("To reset your password", ["your", "reset"]) == ("To ", True)
    assert cut_at_stop("no stop here", ["xyz", ""]) == ("no stop here", False)


def test_scanner_holds_back_what_may_start_a_stop_string() -> None:
    scanner = StopScanner(["</end>"])
    assert scanner.feed("Hello <") == "Hello "
    assert scanner.feed("/e") == ""
    assert scanner.feed("x") == "</ex"  # it was not the stop string after all
    assert scanner.feed(" done </en") == " done "
    assert scanner.feed("d> tail") == ""
    assert scanner.stopped
    assert scanner.feed("more") == ""


def test_scanner_flushes_the_held_tail_at_the_end() -> None:
    scanner = StopScanner(["abc", "b"])
    assert scanner.feed("xa") == "x"
    assert scanner.flush() == "a"
    assert not scanner.stopped
    assert StopScanner([]).feed("anything") == "anything"
    split = StopScanner(["need"])
    pieces = ["To", " reset", " your", " password, you'll", " ne", "ed to"]
    assert "".join(split.feed(p) for p in pieces) == "To reset your password, you'll "
    assert split.stopped


async def test_missing_llamacpp_names_its_own_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(ProviderUnavailableError, match=r"'thrifty\[llamacpp\]'"):
        await local_provider(runtime="llamacpp").chat(
            {"messages": [{"role": "user", "content": "hi"}]}
        )
