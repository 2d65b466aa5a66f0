"""The public surface: every module imports, every name in ``thrifty.__all__`` resolves, and
``import thrifty`` pulls in no heavy optional dependency."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import thrifty

MODULES = sorted(info.name for info in pkgutil.walk_packages(thrifty.__path__, prefix="thrifty."))
HEAVY = ("openai", "langchain_core", "numpy", "torch", "redis", "psycopg", "llama_cpp", "starlette")


def test_the_package_has_modules():
    assert {"thrifty.cache", "thrifty.integrations.openai", "thrifty.integrations.model"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_every_module_imports(name):
    importlib.import_module(name)


@pytest.mark.parametrize("name", thrifty.__all__)
def test_every_public_name_resolves(name):
    assert getattr(thrifty, name) is not None


def test_all_lists_each_name_once_and_sorted():
    assert len(set(thrifty.__all__)) == len(thrifty.__all__)
    assert list(thrifty.__all__) == sorted(thrifty.__all__)


def test_integrations_are_reachable_as_attributes():
    assert thrifty.integrations.langchain.ThriftyCache.__name__ == "ThriftyCache"
    assert thrifty.wrap is thrifty.integrations.openai.wrap
    assert thrifty.cached is thrifty.integrations.model.cached
    with pytest.raises(AttributeError):
        _ = thrifty.no_such_name


def test_import_thrifty_stays_cheap():
    code = (
        "import sys, thrifty\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
