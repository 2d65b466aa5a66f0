"""Every example in ``docs/*.md`` works as written (the README's are run by test_readme.py).

- ``python`` blocks run in a fresh namespace. One that talks to ``http://127.0.0.1:8080`` (a
  gateway started with ``thrifty serve`` and no config) runs against that very default setup,
  served on a free port: the embedded local model, the catch-all entry, the SQLite cache.
- ``yaml`` blocks that are gateway configs validate (a fragment without ``model_list`` is
  validated with the OpenAI models the docs name); blocks of other tools' YAML are left alone.
- ``bash`` lines that call ``thrifty`` parse: the subcommand exists and takes those options.

A block preceded by the line ``<!-- docs-test: skip -->`` is not checked.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from _gateway import serving
from thrifty.cli import app as cli
from thrifty.server.app import create_app
from thrifty.server.config import GatewayConfig, default_config, parse_config

DOCS = Path(__file__).resolve().parents[1] / "docs"
SKIP_MARK = "<!-- docs-test: skip -->"
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```(?P<lang>\w+)\n(?P<code>.*?)\n```", re.DOTALL)
DEFAULT_GATEWAY = "http://127.0.0.1:8080"
#: The OpenAI models the docs' config fragments refer to.
DOC_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini")


def blocks(lang: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            if match["lang"] != lang or match["before"].strip() == SKIP_MARK:
                continue
            line = text.count("\n", 0, match.start("code")) + 1
            found.append((f"{path.name}:{line}", match["code"]))
    return found


def test_the_docs_have_examples_of_each_kind() -> None:
    assert blocks("python") and blocks("yaml") and blocks("bash")


@pytest.mark.parametrize(("where", "code"), blocks("yaml"), ids=lambda v: str(v)[:20])
def test_config_examples_validate(where: str, code: str) -> None:
    data = yaml.safe_load(code)
    if not isinstance(data, dict) or not set(data) & set(GatewayConfig.model_fields):
        pytest.skip(f"{where}: not a gateway config")
    data.setdefault(
        "model_list",
        [{"model_name": m, "litellm_params": {"model": f"openai/{m}"}} for m in DOC_MODELS],
    )
    env = {name: f"test-value-of-{name}" for name in re.findall(r"os\.environ/(\w+)", code)}
    parse_config(data, source=where, env=env)


def _thrifty_lines(code: str) -> list[str]:
    lines = []
    for raw in code.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line.startswith("thrifty "):
            lines.append(line)
    return lines


@pytest.mark.parametrize(
    "line", [line for _, code in blocks("bash") for line in _thrifty_lines(code)]
)
def test_command_examples_parse(line: str) -> None:
    args = shlex.split(line)[1:]
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, f"{line!r}: {result.output}"


@pytest.fixture(scope="module")
def default_gateway() -> Any:
    """``thrifty serve`` with no config, on a free port (the cache in memory)."""
    data = default_config().model_dump()
    data["cache"]["url"] = "memory://"
    with serving(create_app(parse_config(data))) as url:
        yield url


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), blocks("python"), ids=lambda v: str(v)[:20])
def test_python_examples_run(
    where: str, code: str, default_gateway: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = code.replace(DEFAULT_GATEWAY, default_gateway)
    exec(compile(code, where, "exec"), {"__name__": "docs"})
    assert capsys.readouterr().out.strip(), f"{where} printed nothing"
