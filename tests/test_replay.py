"""``thrifty bench replay``: the summary is recounted from requests.jsonl, the figures equal the
ledger's for the same run, and the report is written (shipped sample, hashing embedder: no data
folder or model needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytest.importorskip("matplotlib")

from thrifty.cli import app
from thrifty.replay.run import replay
from thrifty.replay.summary import HITS


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Any]:
    out = tmp_path_factory.mktemp("replay")
    summary, ledgers = replay(out, data=None, requests=40, embedder="hashing", quiet=True)
    return out, summary, ledgers


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]


def test_summary_recounts_from_requests_jsonl(run: tuple[Path, dict[str, Any], Any]) -> None:
    out, _, _ = run
    rows = records(out)
    written = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in written["steps"]] == [
        "none",
        "exact",
        "semantic",
        "routing",
        "compression",
        "student",
    ]
    first_cost = sum(r["cost_usd"] for r in rows if r["step"] == "none")
    for step in written["steps"]:
        mine = [r for r in rows if r["step"] == step["name"]]
        assert step["requests"] == len(mine) == 40
        assert math.isclose(step["cost_usd"], sum(r["cost_usd"] for r in mine), abs_tol=1e-12)
        assert math.isclose(
            step["baseline_cost_usd"], sum(r["baseline_cost_usd"] for r in mine), abs_tol=1e-12
        )
        assert step["tokens_in"] == sum(r["tokens_in"] for r in mine)
        assert step["tokens_out"] == sum(r["tokens_out"] for r in mine)
        assert step["hit_rate"] == sum(r["mechanism"] in HITS for r in mine) / len(mine)
        assert step["wrong_hits"] == sum(r["wrong_hit"] for r in mine)
        assert step["changed_answers"] == sum(r["changed"] for r in mine)
        assert step["wrong_answers"] == sum(not r["correct"] for r in mine)
        assert sum(step["mechanisms"].values()) == len(mine)
        latencies = sorted(r["latency_ms"] for r in mine)
        assert latencies[0] <= step["latency_ms_p50"] <= step["latency_ms_p95"] <= latencies[-1]
        assert math.isclose(
            step["vs_first_pct"], 100 * (step["cost_usd"] - first_cost) / first_cost
        )
    # the sample repeats itself: the cache steps save, and routing saves more
    costs = [s["cost_usd"] for s in written["steps"]]
    assert costs[1] < costs[0] and costs[3] < costs[2]
    assert written["steps"][0]["mechanisms"] == {"miss": 40}
    assert written["steps"][5]["mechanisms"].get("student", 0) >= 1


def test_figures_equal_the_ledgers(run: tuple[Path, dict[str, Any], Any]) -> None:
    _, summary, ledgers = run
    for step in summary["steps"]:
        totals = ledgers[step["name"]].totals
        assert totals.requests == step["requests"]
        assert math.isclose(totals.cost_usd, step["cost_usd"], abs_tol=1e-12)
        assert math.isclose(totals.baseline_cost_usd, step["baseline_cost_usd"], abs_tol=1e-12)
        assert totals.tokens_in == step["tokens_in"]
        by_mechanism = {m: t.requests for m, t in ledgers[step["name"]].by_mechanism.items()}
        assert by_mechanism == step["mechanisms"]


def test_report_is_written(run: tuple[Path, dict[str, Any], Any]) -> None:
    out, summary, _ = run
    for name in ("waterfall.png", "hit_rate.png", "latency.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    markdown = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for step in summary["steps"]:
        assert f"{step['cost_usd']:.4f}" in markdown and f"{step['cost_usd']:.4f}" in page
    assert "![Cost waterfall](waterfall.png)" in markdown


def test_cli_replay(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "replay",
            "-o",
            str(tmp_path),
            "--data",
            str(tmp_path / "absent"),
            "--requests",
            "6",
            "--embedder",
            "hashing",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "requests.jsonl").read_text().splitlines()) == 36
