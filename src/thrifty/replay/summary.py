"""``summary.json`` from ``requests.jsonl``: every figure of the summary is a sum, count or
percentile of the records, computed here and only here (the recount test calls the same
function on the file it reads back)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from typing import Any

HITS = ("exact_hit", "semantic_hit", "coalesced")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linear between ranks; 0 for none."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def kind_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Cost and quality of one kind of request (support, rag, intent, chat...) in a step."""
    return {
        "requests": len(records),
        "cost_usd": sum(float(r["cost_usd"]) for r in records),
        "baseline_cost_usd": sum(float(r["baseline_cost_usd"]) for r in records),
        "wrong_hits": sum(bool(r["wrong_hit"]) for r in records),
        "changed_answers": sum(bool(r["changed"]) for r in records),
        "wrong_answers": sum(not r["correct"] for r in records),
    }


def step_summary(name: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [float(r["latency_ms"]) for r in records]
    totals = [float(r["latency_total_ms"]) for r in records]
    mechanisms = Counter(str(r["mechanism"]) for r in records)
    hits = sum(mechanisms[m] for m in HITS)
    kinds: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        kinds.setdefault(str(record["kind"]), []).append(record)
    return {
        "name": name,
        "requests": len(records),
        "cost_usd": sum(float(r["cost_usd"]) for r in records),
        "baseline_cost_usd": sum(float(r["baseline_cost_usd"]) for r in records),
        "tokens_in": sum(int(r["tokens_in"]) for r in records),
        "tokens_out": sum(int(r["tokens_out"]) for r in records),
        "hit_rate": hits / len(records) if records else 0.0,
        "mechanisms": dict(sorted(mechanisms.items())),
        "wrong_hits": sum(bool(r["wrong_hit"]) for r in records),
        "changed_answers": sum(bool(r["changed"]) for r in records),
        "wrong_answers": sum(not r["correct"] for r in records),
        "latency_ms_p50": percentile(latencies, 0.50),
        "latency_ms_p95": percentile(latencies, 0.95),
        "latency_ms_mean": statistics.fmean(latencies) if latencies else 0.0,
        "upstream_calls": sum(int(r["upstream_calls"]) for r in records),
        "upstream_ms_simulated": sum(float(r["upstream_ms_simulated"]) for r in records),
        "latency_total_ms_p50": percentile(totals, 0.50),
        "latency_total_ms_p95": percentile(totals, 0.95),
        "latency_total_ms_mean": statistics.fmean(totals) if totals else 0.0,
        "kinds": {kind: kind_summary(rows) for kind, rows in sorted(kinds.items())},
    }


def summarize_records(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{"steps": [...]}`` in the order the steps appear, each with its cost against the first
    step's (every mechanism off) as ``vs_first_pct``."""
    by_step: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_step.setdefault(str(record["step"]), []).append(record)
    result = [step_summary(name, rows) for name, rows in by_step.items()]
    first = result[0]["cost_usd"] if result else 0.0
    for step in result:
        step["vs_first_pct"] = 100.0 * (step["cost_usd"] - first) / first if first else 0.0
    return {"steps": result}
