"""The gateway's ledger: one row per answered request, and every reader of it — the admin
route, ``thrifty stats`` — agreeing with ``/metrics`` for the same traffic (coalesced answers
count as savings in both)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from _gateway import fake_config, gateway, stored, web
from thrifty.cache import Cache, SemanticSettings
from thrifty.cli import app as cli
from thrifty.ledger import Mechanism
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.semantic.policy import FixedThreshold
from thrifty.server.config import parse_config
from thrifty.testing.fake_openai import FakeOpenAI

ADMIN = {"Authorization": "Bearer sk-admin"}
A = {"Authorization": "Bearer sk-a"}
B = {"Authorization": "Bearer sk-b"}


def _config(fake: FakeOpenAI, ledger_url: str) -> Any:
    return fake_config(
        fake.base_url,
        keys=[{"key": "sk-a", "tenant": "a"}, {"key": "sk-b", "tenant": "b"}],
        admin_key="sk-admin",
        ledger={"url": ledger_url},
    )


def chat(url: str, text: str, headers: dict[str, str], **extra: Any) -> Any:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}
    response = web.post(f"{url}/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


def metric_sums(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(sums: dict[Any, float], name: str, **labels: str) -> float:
    return sum(
        v
        for (n, ls), v in sums.items()
        if n == name and all(dict(ls).get(k) == want for k, want in labels.items())
    )


def mixed_traffic(url: str, fake: FakeOpenAI) -> int:
    """Misses, exact hits, coalesced requests, streams, a completion and a provider
    prompt-cache read, over two tenants; returns how many requests were sent."""
    sent = 0
    for i in range(3):
        chat(url, f"question {i}", A)
        sent += 1
    stored(url)
    for i in range(2):
        assert chat(url, f"question {i}", A).headers["x-thrifty-cache-status"] == "HIT"
        sent += 1
    fake.delay = 0.3  # identical requests in flight together: one call, the rest coalesced
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: chat(url, "together", B), range(4)))
    fake.delay = 0.0
    sent += 4
    assert sorted(a.headers["x-thrifty-cache-status"] for a in answers) == ["HIT"] * 3 + ["MISS"]
    streamed = chat(url, "a stream", B, stream=True, stream_options={"include_usage": True})
    assert streamed.headers["x-thrifty-cache-status"] == "MISS"
    sent += 1
    stored(url)
    again = chat(url, "a stream", B, stream=True)
    assert again.headers["x-thrifty-cache-status"] == "HIT"
    sent += 1
    completion = web.post(
        f"{url}/v1/completions", json={"model": "gpt-4o-mini", "prompt": "say hi"}, headers=A
    )
    assert completion.status_code == 200
    sent += 1
    fake.cached_tokens = 6
    chat(url, "a long shared system prompt and a question", A)
    fake.cached_tokens = 0
    sent += 1
    stored(url)
    return sent


def test_ledger_agrees_with_metrics_and_thrifty_stats(fake: FakeOpenAI, tmp_path: Path) -> None:
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with gateway(_config(fake, ledger_url)) as (url, _):
        sent = mixed_traffic(url, fake)
        summary = web.get(f"{url}/admin/ledger/summary", headers=ADMIN).json()
        series = web.get(f"{url}/admin/ledger/series?bucket=hour", headers=ADMIN).json()
        sums = metric_sums(web.get(f"{url}/metrics").text)
    totals, by_mechanism = summary["totals"], summary["by_mechanism"]
    assert totals["requests"] == sent
    answered = total(sums, "thrifty_requests_total", status="200", endpoint="chat") + total(
        sums, "thrifty_requests_total", status="200", endpoint="completions"
    )
    assert totals["requests"] == answered
    assert totals["cost_usd"] > 0
    assert totals["cost_usd"] == pytest.approx(total(sums, "thrifty_spend_usd_total"), rel=1e-9)
    assert totals["saved_usd"] == pytest.approx(total(sums, "thrifty_savings_usd_total"), rel=1e-9)
    for mechanism in ("exact_hit", "coalesced", "provider_cache_read"):
        assert by_mechanism[mechanism]["saved_usd"] > 0
        assert by_mechanism[mechanism]["saved_usd"] == pytest.approx(
            total(sums, "thrifty_savings_usd_total", mechanism=mechanism), rel=1e-9
        )
    lookups = {
        result: total(sums, "thrifty_cache_lookups_total", result=result)
        for result in ("hit", "coalesced", "miss")
    }
    assert by_mechanism["exact_hit"]["requests"] == lookups["hit"] == 3
    assert by_mechanism["coalesced"]["requests"] == lookups["coalesced"] == 3
    misses = by_mechanism["miss"]["requests"] + by_mechanism["provider_cache_read"]["requests"]
    assert misses == lookups["miss"] == 7
    assert by_mechanism["provider_cache_read"]["tokens_cached"] == 6
    assert summary["by_tenant"]["a"]["requests"] + summary["by_tenant"]["b"]["requests"] == sent
    assert sum(p["requests"] for p in series["points"]) == sent
    assert {p["mechanism"] for p in series["points"]} == set(by_mechanism)
    # thrifty stats reads the same ledger (the gateway wrote it all when it stopped)
    result = CliRunner().invoke(
        cli, ["stats", "--cache", "memory://", "--ledger", ledger_url, "--json"]
    )
    assert result.exit_code == 0, result.output
    ledger = json.loads(result.output)["ledger"]
    assert ledger["totals"] == pytest.approx(totals)
    assert ledger["by_mechanism"].keys() == by_mechanism.keys()
    table = CliRunner().invoke(
        cli, ["stats", "--cache", "memory://", "--ledger", ledger_url], env={"COLUMNS": "200"}
    )
    assert "mechanism: coalesced" in table.output


def test_rows_carry_tenant_key_model_and_a_hashed_user(fake: FakeOpenAI) -> None:
    with gateway(_config(fake, "memory://")) as (url, app):
        chat(url, "hello", A, user="alice@example.com")
        writer = app.state.gateway.ledger
        writer.flush()
        (row,) = writer.ledger.rows()
        assert (row.tenant, row.mechanism, row.model) == ("a", Mechanism.MISS, "gpt-4o-mini")
        assert row.key_id and row.user and "alice" not in row.user
        assert row.cost_usd > 0 and row.baseline_cost_usd == row.cost_usd
        assert row.tokens_in > 0 and row.tokens_out > 0 and row.latency_ms > 0
        chat(url, "hello again", B, user="alice@example.com")  # still queued: purged too
        assert writer.purge_user("alice@example.com") == 2
        assert writer.ledger.rows() == []
        chat(url, "and again", B)
        assert writer.delete_tenant("b") == 1


def test_admin_ledger_routes_need_the_admin_key_and_check_their_parameters(
    fake: FakeOpenAI,
) -> None:
    with gateway(_config(fake, "memory://")) as (url, _):
        chat(url, "hello", B)
        assert web.get(f"{url}/admin/ledger/summary", headers=A).status_code in (401, 403)
        bad = web.get(f"{url}/admin/ledger/summary?since=yesterday", headers=ADMIN)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "since"
        bad = web.get(f"{url}/admin/ledger/series?bucket=week", headers=ADMIN)
        assert bad.status_code == 400
        later = web.get(f"{url}/admin/ledger/summary?since=2999-01-01", headers=ADMIN).json()
        assert later["totals"]["requests"] == 0
        mine = web.get(f"{url}/admin/ledger/summary?tenant=b", headers=ADMIN).json()
        assert mine["totals"]["requests"] == 1
    off = fake_config(fake.base_url, admin_key="sk-admin", ledger={"enabled": False})
    with gateway(off) as (url, _):
        assert web.get(f"{url}/admin/ledger/summary", headers=ADMIN).status_code == 404


def test_feedback_flags_a_wrong_semantic_hit_in_the_ledger(fake: FakeOpenAI) -> None:
    cache = Cache(
        "memory://",
        semantic=SemanticSettings(embedder=HashingEmbedder(), policy=FixedThreshold(0.6)),
    )
    system = {"role": "system", "content": "Support bot."}

    def ask(question: str) -> Any:
        body = {"model": "gpt-4o-mini", "temperature": 0,
                "messages": [system, {"role": "user", "content": question}]}  # fmt: skip
        return web.post(f"{url}/v1/chat/completions", json=body)

    with gateway(fake_config(fake.base_url), cache=cache) as (url, app):
        ask("How do I reset my password?")
        hit = ask("how do i reset my password please")
        assert hit.headers["x-thrifty-cache-status"] == "SEMANTIC_HIT"
        hit_id = hit.headers["x-thrifty-hit-id"]
        feedback = {"hit_id": hit_id, "correct": False}
        assert web.post(f"{url}/v1/thrifty/feedback", json=feedback).status_code == 200
        writer = app.state.gateway.ledger
        rows = {r.mechanism: r for r in writer.ledger.rows()}
    assert rows[Mechanism.SEMANTIC_HIT].request_id == hit_id
    assert rows[Mechanism.SEMANTIC_HIT].wrong_hit is True
    assert rows[Mechanism.MISS].wrong_hit is False
    assert writer.ledger.summary().by_mechanism["semantic_hit"].wrong_hits == 1


def test_a_routed_down_answer_and_a_cascade_in_the_ledger(tmp_path: Path) -> None:
    def cheap_reply(request: dict[str, Any], number: int) -> str:
        text = request["messages"][-1]["content"]
        return "  " if text == "say nothing" else f"cheap: {text}"

    def entry(name: str, model: str, fake: FakeOpenAI) -> dict[str, Any]:
        return {"model_name": name, "model": model, "api_base": fake.base_url, "api_key": "k"}

    with FakeOpenAI(cheap_reply) as cheap, FakeOpenAI() as strong:
        config = parse_config(
            {
                "model_list": [
                    entry("cheap", "openai/gpt-4o-mini", cheap),
                    entry("strong", "openai/gpt-4o", strong),
                ],
                "router_settings": {"num_retries": 0, "retry_base_delay": 0.0, "timeout": 10},
                "cache": {"url": "memory://"},
                "routes": [{"name": "thrifty/auto", "chain": ["cheap", "strong"]}],
            },
            source="test.yaml",
        )
        with gateway(config) as (url, app):
            for text in ("opening hours?", "say nothing"):  # the second cascades to strong
                body = {"model": "thrifty/auto", "messages": [{"role": "user", "content": text}]}
                assert web.post(f"{url}/v1/chat/completions", json=body).status_code == 200
            writer = app.state.gateway.ledger
            writer.flush()
            routed, cascaded = writer.ledger.rows()
    assert (routed.mechanism, routed.model) == (Mechanism.ROUTED_DOWN, "cheap")
    assert routed.baseline_cost_usd > 10 * routed.cost_usd  # gpt-4o costs ~16x gpt-4o-mini
    assert (cascaded.mechanism, cascaded.model) == (Mechanism.MISS, "strong")
    assert cascaded.baseline_cost_usd < cascaded.cost_usd  # paid for two answers: a loss
