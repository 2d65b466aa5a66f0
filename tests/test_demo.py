"""Demo workloads (deterministic streams with repeats) and the replay's accounting."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from thrifty import Cache, ConfigError
from thrifty.demo import workload
from thrifty.demo.replay import percentile, replay
from thrifty.demo.workload import (
    find_support_data,
    label,
    shipped_workload,
    support_workload,
)
from thrifty.providers.base import Provider


class CountingProvider(Provider):
    """A fake upstream (named as such) answering at once with fixed usage."""

    name = "fake"

    def __init__(self) -> None:
        self.calls = 0

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        text = body["messages"][-1]["content"]
        return {
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text.upper()}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }

    async def chat_stream(self, body: dict[str, Any]):  # type: ignore[no-untyped-def]
        yield await self.chat(body)


def test_shipped_workload_is_deterministic_with_repeats_early() -> None:
    first, again = shipped_workload(), shipped_workload()
    assert first.requests == again.requests
    assert shipped_workload(seed=1).requests != first.requests
    assert 150 <= len(first.requests) <= 200
    assert first.distinct >= 60
    assert first.count("paraphrase") >= 5
    # The CLI test and a quick `--limit 6` demo rely on a repeat among the first six.
    assert any(r.kind == "repeat" for r in first.requests[:6])


def test_label_marks_repeats_and_paraphrases() -> None:
    kinds = [r.kind for r in label([("a", "t1"), ("b", "t1"), ("a", "t1"), ("c", "t2")])]
    assert kinds == ["new", "paraphrase", "repeat", "new"]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        shipped_workload().limited(0)


def test_support_workload_samples_with_natural_repeats(tmp_path: Path) -> None:
    data = tmp_path / "s.csv.gz"
    lines = ["instruction,intent,category,response"]
    lines += [f"question number {i},intent_{i % 5},CAT,answer" for i in range(300)]
    data.write_bytes(gzip.compress("\n".join(lines).encode()))
    stream = support_workload(data, requests=200, seed=3)
    assert len(stream.requests) == 200
    assert stream.count("repeat") > 20  # Zipf-like popularity makes questions recur
    assert stream.requests == support_workload(data, requests=200, seed=3).requests


def test_support_data_missing_names_the_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="not found"):
        find_support_data(tmp_path / "nope.csv.gz")
    monkeypatch.setattr(workload, "SUPPORT_FILE", Path("no/such/bitext_support.csv.gz"))
    with pytest.raises(ConfigError, match=r"looked for .*bitext_support\.csv\.gz"):
        find_support_data(None, roots=[tmp_path])


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0


async def test_replay_accounts_hits_at_the_price_model() -> None:
    stream = shipped_workload().limited(40)
    provider = CountingProvider()
    with Cache("memory://") as cache:
        report = await replay(stream, cache, provider, max_tokens=8, price_model="gpt-4o-mini")
    assert provider.calls == stream.distinct
    assert report.hits == stream.count("repeat")
    assert report.saved.hits == report.hits
    per_call = 100 * 0.15e-6 + 20 * 0.6e-6  # gpt-4o-mini's default prices
    assert report.saved.tokens_saved == 120 * report.hits
    assert report.saved.usd_saved == pytest.approx(per_call * report.hits)
    assert report.paid_usd == pytest.approx(per_call * stream.distinct)
    assert report.cost_without_cache_usd == pytest.approx(per_call * len(stream.requests))
    assert report.wall_without_cache_s >= report.wall_s - 0.05


@pytest.mark.slow
def test_demo_runs_on_the_default_local_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's first command, cut to three requests: the prebuilt runtime serves it."""
    from typer.testing import CliRunner

    from thrifty.cli import app

    monkeypatch.delenv("THRIFTY_LOCAL_RUNTIME", raising=False)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    args = ["demo", "--workload", "shipped", "--limit", "3", "--max-tokens", "4", "--cache", url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "SmolLM2-135M-Instruct via mistral.rs" in result.output
    assert "cache hits" in result.output
