"""The README's Python examples run, as written, against a fake OpenAI upstream.

Every fenced ``python`` block of README.md is executed in a fresh namespace, in a temporary
directory (so SQLite files land there), with ``OPENAI_BASE_URL`` pointing at
:class:`thrifty.testing.fake_openai.FakeOpenAI` (a fake: it answers at once with made-up text).
A block preceded by the line ``<!-- readme-test: skip -->`` is not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from thrifty.testing.fake_openai import FakeOpenAI

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP_MARK = "<!-- readme-test: skip -->"
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.DOTALL)


def python_blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in BLOCK.finditer(text):
        if match["before"].strip() == SKIP_MARK:
            continue
        blocks.append((text.count("\n", 0, match.start("code")) + 1, match["code"]))
    return blocks


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 4


@pytest.mark.slow
@pytest.mark.parametrize(("line", "code"), python_blocks(), ids=lambda v: str(v)[:12])
def test_readme_example_runs(
    line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key-for-the-fake")
        try:
            exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "readme"})
        finally:
            from langchain_core.globals import set_llm_cache

            set_llm_cache(None)  # an example may install a global LangChain cache
