"""The Grafana dashboard (``deploy/grafana/thrifty.json``) asks only for metrics the gateway
really exports: every PromQL ``expr`` is parsed (``promql-parser``, the Prometheus grammar) and
each metric it selects is checked against a scrape of an in-process gateway's ``/metrics``
after mixed traffic — misses, hits, a stream, a 429 and an upstream error. A renamed metric
would otherwise leave an empty panel that nobody notices."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from _gateway import fake_config, gateway, stored, web
from thrifty.testing.fake_openai import FakeOpenAI

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "thrifty.json"

#: Grafana's variables, replaced by values PromQL accepts before parsing.
VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "$model": ".*"}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in data["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def exprs(data: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(data) for t in p.get("targets", [])]


def parse(expr: str) -> Any:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"an unknown Grafana variable in {expr!r}"
    return promql_parser.parse(expr)


def children(node: Any) -> list[Any]:
    """The sub-expressions of one PromQL node, whatever its kind."""
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, promql_parser.ParenExpr | promql_parser.SubqueryExpr):
        return [node.expr]
    if isinstance(node, promql_parser.UnaryExpr):
        return [node.expr]
    return []


def walk(node: Any) -> Iterator[Any]:
    yield node
    for child in children(node):
        yield from walk(child)


def selected_metrics(node: Any) -> set[str]:
    return {n.name for n in walk(node) if isinstance(n, promql_parser.VectorSelector)}


def test_every_panel_has_a_query_and_every_query_parses() -> None:
    data = dashboard()
    assert data["uid"] and data["title"]
    for panel in panels(data):
        if panel["type"] != "row":
            assert panel.get("targets"), f"panel {panel['title']!r} has no query"
    found = exprs(data)
    assert len(found) >= 20
    for expr in found:
        assert selected_metrics(parse(expr)), f"{expr!r} selects no metric"


def test_histogram_quantile_reads_bucket_series() -> None:
    quantiles = 0
    for expr in exprs(dashboard()):
        for node in walk(parse(expr)):
            if isinstance(node, promql_parser.Call) and node.func.name == "histogram_quantile":
                quantiles += 1
                names = selected_metrics(node.args[1])
                assert names and all(n.endswith("_bucket") for n in names), expr
                by = [n for n in walk(node.args[1]) if isinstance(n, promql_parser.AggregateExpr)]
                assert "le" in str(by[0].modifier), f"{expr!r} does not keep the le label"
    assert quantiles >= 6  # p50/p95/p99 of upstream latency and overhead, at least


def test_the_model_variable_reads_an_exported_label() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    query = variables["model"]["query"]["query"]
    match = re.fullmatch(r"label_values\((\w+), (\w+)\)", query)
    assert match and match.group(2) == "model"
    assert match.group(1) in scraped()[0]


def mixed_traffic(url: str, fake: FakeOpenAI) -> None:
    """Misses, exact hits, a stream, a key's 429, an upstream error and a fallback."""
    key = {"Authorization": "Bearer sk-a"}
    limited = {"Authorization": "Bearer sk-slow"}

    def chat(text: str, headers: dict[str, str], **extra: Any) -> int:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}
        return web.post(f"{url}/v1/chat/completions", json=body, headers=headers).status_code

    assert [chat(f"q{i}", key) for i in range(3)] == [200] * 3
    stored(url)
    assert [chat(f"q{i}", key) for i in range(3)] == [200] * 3
    assert chat("a stream", key, stream=True) == 200
    assert [chat(f"r{i}", limited) for i in range(2)] == [200, 429]
    fake.fail_next(2, status=500)  # the model and its one retry fail, the fallback answers
    assert chat("falls back", key) == 200
    fake.fail_next(10, status=500)
    assert chat("fails", key) >= 500
    fake.reset()
    stored(url)


_SCRAPE: list[tuple[set[str], set[str]]] = []


def scraped() -> tuple[set[str], set[str]]:
    """(every series name the gateway declares, the names that have samples after traffic)."""
    if not _SCRAPE:
        with FakeOpenAI() as fake:
            config = fake_config(
                fake.base_url,
                keys=[{"key": "sk-a", "tenant": "a"}, {"key": "sk-slow", "tenant": "b", "rpm": 1}],
                router_settings={
                    "num_retries": 1,
                    "retry_base_delay": 0.0,
                    "timeout": 10,
                    "fallbacks": [{"gpt-4o-mini": ["backup"]}],
                },
            )
            with gateway(config) as (url, _app):
                mixed_traffic(url, fake)
                text = web.get(f"{url}/metrics").text
        declared: set[str] = set()
        sampled: set[str] = set()
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count")}
        for family in text_string_to_metric_families(text):
            declared.update(family.name + s for s in suffixes.get(family.type, ("",)))
            sampled.update(s.name for s in family.samples)
        _SCRAPE.append((declared, sampled))
    return _SCRAPE[0]


def test_every_metric_in_the_dashboard_is_exported_by_the_gateway() -> None:
    declared, sampled = scraped()
    used = set().union(*(selected_metrics(parse(e)) for e in exprs(dashboard())))
    assert used and all(name.startswith("thrifty_") for name in used)
    assert used <= declared, f"not exported: {sorted(used - declared)}"
    # the mixed traffic gave the core panels data, not only a declaration
    core = {
        "thrifty_requests_total",
        "thrifty_cache_lookups_total",
        "thrifty_spend_usd_total",
        "thrifty_savings_usd_total",
        "thrifty_tokens_saved_total",
        "thrifty_tokens_total",
        "thrifty_rate_limited_total",
        "thrifty_upstream_attempts_total",
        "thrifty_fallbacks_total",
        "thrifty_upstream_latency_seconds_bucket",
        "thrifty_gateway_overhead_seconds_bucket",
        "thrifty_time_to_first_token_seconds_bucket",
    }
    assert core <= used
    assert core <= sampled, f"no samples after traffic: {sorted(core - sampled)}"


@pytest.mark.parametrize("name", ["thrifty_not_a_metric_total", "thrifty_requests"])
def test_the_check_catches_a_name_the_gateway_does_not_export(name: str) -> None:
    declared, _ = scraped()
    assert selected_metrics(parse(f"sum(rate({name}[$__rate_interval]))")) == {name}
    assert name not in declared
