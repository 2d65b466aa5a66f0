"""The ``thrifty`` command: demo, stats and cache management, with their exit codes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thrifty import Cache
from thrifty.cli import app
from thrifty.demo.replay import DEMO_NAMESPACE

runner = CliRunner()


@pytest.fixture
def cache_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def fill(url: str) -> None:
    with Cache(url) as cache:
        cache.set("k1", {"a": 1}, tags=["doc:1"], user_id="u1", model="gpt-4o")
        cache.set("k2", {"a": 2}, tags=["doc:2"], user_id="u2", model="gpt-4o")
        cache.set("k3", {"a": 3}, namespace="other", user_id="u1", model="gpt-4o-mini")


def count(url: str, namespace: str | None = None) -> int:
    with Cache(url) as cache:
        return cache.stats(namespace).entries


@pytest.mark.slow
def test_demo_reports_hits_from_the_local_model(cache_url: str) -> None:
    code, out = invoke(
        "demo", "--workload", "shipped", "--limit", "6", "--max-tokens", "4", "--cache", cache_url
    )
    assert code == 0, out
    assert "workload: shipped" in out
    assert "cache hits" in out
    assert "1 (16.7%)" in out  # the shipped stream repeats a question within its first 6
    assert "cost on gpt-4o-mini without cache" in out
    assert "Served from cache" in out

    code, out = invoke("stats", "--cache", cache_url, "--namespace", DEMO_NAMESPACE, "--json")
    assert code == 0, out
    stats = json.loads(out)
    assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 5, 5)
    assert stats["tokens_saved"] > 0
    assert stats["usd_saved"] > 0

    code, out = invoke(
        "demo",
        "--workload",
        "shipped",
        "--limit",
        "6",
        "--max-tokens",
        "4",
        "--cache",
        cache_url,
        "--keep",
    )
    assert code == 0, out
    assert "6 (100.0%)" in out

    code, out = invoke(
        "demo", "--workload", "shipped", "--limit", "6", "--max-tokens", "4", "--cache", cache_url
    )
    assert code == 0, out
    assert "1 (16.7%)" in out  # without --keep the demo starts from an empty namespace


@pytest.mark.slow
def test_demo_replays_the_support_data_set(tmp_path: Path, cache_url: str) -> None:
    data = tmp_path / "support.csv.gz"
    rows = ["instruction,intent,category,response"]
    rows += [f"how do I cancel order {i}?,cancel_order,ORDER,answer" for i in range(3)]
    rows += ['"where is my refund, please?",track_refund,REFUND,answer']
    data.write_bytes(gzip.compress("\n".join(rows).encode()))
    code, out = invoke(
        "demo", "--data", str(data), "--limit", "5", "--max-tokens", "2", "--cache", cache_url
    )
    assert code == 0, out
    assert "workload: support" in out
    assert "requests" in out


@pytest.mark.slow
def test_demo_defaults_to_the_shipped_stream_and_auto_picks_support_when_present(
    tmp_path: Path, cache_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default replays the same shipped questions on every machine (the data set beside the
    repository would make the first command slower and its output different); ``--workload
    auto`` takes the Bitext data set when it is found."""
    from thrifty.demo import workload

    data = tmp_path / "support.csv.gz"
    rows = ["instruction,intent,category,response", "how do I cancel?,cancel_order,ORDER,a"]
    data.write_bytes(gzip.compress("\n".join(rows).encode()))
    real = workload.find_support_data
    monkeypatch.setattr(workload, "find_support_data", lambda explicit=None: real(explicit or data))
    code, out = invoke("demo", "--limit", "2", "--max-tokens", "2", "--cache", cache_url)
    assert code == 0, out
    assert "workload: shipped" in out
    assert "2 requests" in out

    code, out = invoke(
        "demo", "--workload", "auto", "--limit", "2", "--max-tokens", "2", "--cache", cache_url
    )
    assert code == 0, out
    assert "workload: support" in out

    monkeypatch.setattr(workload, "support_data_available", lambda: False)
    code, out = invoke(
        "demo", "--workload", "auto", "--limit", "2", "--max-tokens", "2", "--cache", cache_url
    )
    assert code == 0, out
    assert "workload: shipped" in out


def test_demo_default_stream_is_short_enough_for_the_first_command() -> None:
    """The README's first command must finish within two minutes on a fresh 2-core machine: the
    default replay holds DEFAULT_DEMO_REQUESTS requests, of which about half are misses (each one a
    real generation)."""
    from thrifty.demo import workload

    stream = workload.shipped_workload().limited(workload.DEFAULT_DEMO_REQUESTS)
    assert len(stream.requests) == workload.DEFAULT_DEMO_REQUESTS == 60
    assert stream.distinct <= 35
    assert stream.count("repeat") >= 20


@pytest.mark.parametrize(
    "args",
    [
        ("demo", "--cache", "nope://x"),
        ("demo", "--workload", "movies"),
        ("demo", "--price-model", "no-such-model"),
        ("demo", "--max-tokens", "0"),
        ("demo", "--data", "/nonexistent/support.csv.gz"),
        ("stats", "--cache", "bogus"),
        ("cache", "invalidate", "--tag", "x", "--cache", "ftp://x"),
        ("cache", "invalidate"),
        ("cache", "purge-user", "u1", "--cache", "nope://x"),
    ],
)
def test_bad_usage_exits_2_with_a_message(args: tuple[str, ...], cache_url: str) -> None:
    if "--cache" not in args and args[0] == "demo":
        args = (*args, "--cache", cache_url)
    code, out = invoke(*args)
    assert code == 2, out
    assert "error" in out.lower()


def test_unreachable_backend_exits_1() -> None:
    code, out = invoke("stats", "--cache", "redis://127.0.0.1:1/0")
    assert code == 1
    assert "unreachable" in out


def test_stats_table_and_json(cache_url: str) -> None:
    fill(cache_url)
    with Cache(cache_url) as cache:
        cache.get("k1")
        cache.get("missing")
    code, out = invoke("stats", "--cache", cache_url)
    assert code == 0, out
    assert "hit rate" in out and "50.0%" in out
    code, out = invoke("stats", "--cache", cache_url, "--json", "--namespace", "other")
    assert code == 0, out
    assert json.loads(out)["entries"] == 1


def test_invalidate_by_tag_model_and_namespace(cache_url: str) -> None:
    fill(cache_url)
    code, out = invoke("cache", "invalidate", "--tag", "doc:1", "--cache", cache_url)
    assert (code, out.strip()) == (0, "removed 1 entries")
    code, out = invoke("cache", "invalidate", "--model", "gpt-4o-mini", "--cache", cache_url)
    assert (code, out.strip()) == (0, "removed 1 entries")
    assert count(cache_url) == 1
    code, out = invoke("cache", "invalidate", "--namespace", "default", "--cache", cache_url)
    assert (code, out.strip()) == (0, "removed 1 entries")
    assert count(cache_url) == 0


def test_purge_user_removes_the_user_in_every_namespace(cache_url: str) -> None:
    fill(cache_url)
    code, out = invoke("cache", "purge-user", "u1", "--cache", cache_url)
    assert code == 0, out
    assert "purged 2 entries" in out
    assert count(cache_url) == 1


def test_clear_asks_first(cache_url: str) -> None:
    fill(cache_url)
    result = runner.invoke(app, ["cache", "clear", "--cache", cache_url], input="n\n")
    assert result.exit_code == 1
    assert count(cache_url) == 3
    code, out = invoke("cache", "clear", "--cache", cache_url, "--yes")
    assert code == 0, out
    assert count(cache_url) == 0


@pytest.mark.parametrize(
    "command", [("demo",), ("stats",), ("cache", "invalidate"), ("cache", "purge-user")]
)
def test_help_shows_an_example(command: tuple[str, ...]) -> None:
    code, out = invoke(*command, "--help")
    assert code == 0
    assert "Example: thrifty " + command[0] in out
