"""``thrifty bench replay``: the summary is recounted from requests.jsonl, the figures equal the
ledger's for the same run, and the report is written (shipped sample, hashing embedder: no data
folder or model needed)."""

from __future__ import annotations

import gzip
import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytest.importorskip("matplotlib")

from thrifty.cli import app
from thrifty.replay.run import replay
from thrifty.replay.streams import AGREEMENT_QUANTILE, chat_items
from thrifty.replay.summary import HITS
from thrifty.replay.upstream import UpstreamLatency
from thrifty.replay.workload import is_test


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
        assert step["upstream_calls"] == sum(r["upstream_calls"] for r in mine)
        assert math.isclose(
            step["upstream_ms_simulated"], sum(r["upstream_ms_simulated"] for r in mine)
        )
        totals = statistics.quantiles(
            [r["latency_total_ms"] for r in mine], n=100, method="inclusive"
        )
        assert math.isclose(step["latency_total_ms_p50"], totals[49])
        assert math.isclose(step["latency_total_ms_p95"], totals[94])
        assert sum(k["requests"] for k in step["kinds"].values()) == len(mine)
        for kind, part in step["kinds"].items():
            theirs = [r for r in mine if r["kind"] == kind]
            assert part["requests"] == len(theirs)
            assert math.isclose(part["cost_usd"], sum(r["cost_usd"] for r in theirs), abs_tol=1e-12)
            assert part["wrong_answers"] == sum(not r["correct"] for r in theirs)
            assert part["changed_answers"] == sum(r["changed"] for r in theirs)
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
    assert "| miss 40 |" in markdown  # each step's mechanisms, as the ledger counted them


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


def test_upstream_latency_is_simulated_per_call_and_token(
    run: tuple[Path, dict[str, Any], Any],
) -> None:
    """Each upstream call adds 500 ms + 15 ms per output token (the defaults) to the measured
    gateway latency; a cache hit makes no call and adds nothing."""
    out, _, _ = run
    rows = records(out)
    latency = UpstreamLatency()
    misses = [r for r in rows if r["step"] == "none"]
    assert all(r["upstream_calls"] == 1 for r in misses)
    for r in misses:
        assert math.isclose(r["upstream_ms_simulated"], latency.of(r["tokens_out"]))
        assert math.isclose(r["latency_total_ms"], r["latency_ms"] + r["upstream_ms_simulated"])
    hits = [r for r in rows if r["mechanism"] == "exact_hit"]
    assert hits and all(r["upstream_calls"] == 0 for r in hits)
    assert all(r["latency_total_ms"] == r["latency_ms"] for r in hits)


def test_routing_quality_cost_on_the_intent_stream(
    run: tuple[Path, dict[str, Any], Any],
) -> None:
    """The sample's banking message whose cheap label is wrong is right with every mechanism
    off and wrong once routing sends it to the cheap model: counted, and printed by kind."""
    out, summary, _ = run
    rows = records(out)
    stolen = [r for r in rows if r["class"] == "lost_or_stolen_card"]
    assert stolen, "the sample's traffic holds the message"
    assert all(r["correct"] for r in stolen if r["step"] in ("none", "exact"))
    routed = [r for r in stolen if r["step"] == "routing" and r["mechanism"] != "exact_hit"]
    assert routed and not any(r["correct"] for r in routed)
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["routing"]["kinds"]["intent"]["wrong_answers"] > 0
    assert steps["none"]["kinds"]["intent"]["wrong_answers"] == 0
    markdown = (out / "report.md").read_text()
    assert "## Quality cost by kind of request" in markdown
    assert "| intent | routing |" in markdown


def _arena(folder: Path, prompts: list[str]) -> None:
    """A tiny arena-hard folder: strong answers repeat the prompt; the second strong model
    agrees; the cheap model says what the strong one says on even prompts and writes about
    something else on odd ones."""
    folder.mkdir(parents=True)
    with (folder / "questions.jsonl").open("w") as fh:
        for i, p in enumerate(prompts):
            fh.write(json.dumps({"uid": f"u{i}", "cluster": "c", "prompt": p}) + "\n")

    def answers(model: str, text: Any) -> None:
        with gzip.open(folder / f"{model}_answers.jsonl.gz", "wt") as fh:
            for i, p in enumerate(prompts):
                content = {"answer": text(i, p)}
                row = {"uid": f"u{i}", "messages": [{"role": "user"}, {"content": content}]}
                fh.write(json.dumps(row) + "\n")

    answers("gpt-4-0314", lambda i, p: f"About {p}: the answer explains {p} in detail.")
    answers("gpt-4-0613", lambda i, p: f"About {p}: here the answer explains {p} in detail.")
    answers(
        "gpt-3.5-turbo-0125",
        lambda i, p: (
            f"About {p}: the answer explains {p} in detail."
            if i % 2 == 0
            else "Bananas ripen faster in a paper bag with an apple."
        ),
    )


def test_chat_answers_are_judged_by_agreement_with_the_strong_answer(tmp_path: Path) -> None:
    topics = [f"topic number {n} of quantum gardening" for n in range(60)]
    dev = [t for t in topics if not is_test(t)]
    test = [t for t in topics if is_test(t)]
    assert dev and len(test) >= 4
    _arena(tmp_path / "arena_hard", topics)
    items, bar = chat_items(tmp_path, 100, embedder="hashing")
    assert 0.0 < AGREEMENT_QUANTILE < 0.5 and 0.0 < bar <= 1.0
    assert {i.question for i in items} == set(test)
    for item in items:
        assert item.cheap_ok is (topics.index(item.question) % 2 == 0), item
