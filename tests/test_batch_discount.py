"""The batch discount as its own ledger mechanism: an answer the provider says it billed on a
tier at Batch API rates (OpenAI's ``service_tier: "flex"``) costs those rates, and the
difference to the standard rates is saved as ``batch_discount`` — on a gateway request, and on
each line of a gateway batch job (whose lines now reach the ledger too). Upstream: FAKE."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from _gateway import fake_config, gateway, sdk, web
from thrifty.accounting.prices import PriceTable, billed_at_batch_rates
from thrifty.ledger import Mechanism
from thrifty.server.pricing import Pricer
from thrifty.testing.fake_openai import FakeOpenAI

MINI = PriceTable().get("gpt-4o-mini")


def test_only_a_flex_answer_is_billed_at_batch_rates() -> None:
    assert billed_at_batch_rates({"service_tier": "flex"})
    assert not billed_at_batch_rates({"service_tier": "default"})
    assert not billed_at_batch_rates({})
    assert not billed_at_batch_rates(None)


def test_the_pricer_prices_a_flex_answer_at_batch_rates() -> None:
    assert MINI is not None and MINI.input_cost_per_token_batches is not None
    pricer = Pricer(fake_config("http://127.0.0.1:9"))
    usage = {"prompt_tokens": 1000, "completion_tokens": 200}
    body = {"model": "gpt-4o-mini", "messages": []}
    standard = pricer.price_usage("gpt-4o-mini", body, {"usage": usage})
    flex = pricer.price_usage("gpt-4o-mini", body, {"usage": usage, "service_tier": "flex"})
    assert standard.batch_saved_usd == 0.0
    assert flex.cost_usd == pytest.approx(1000 * 7.5e-08 + 200 * 3.0e-07)
    assert flex.cost_usd == pytest.approx(standard.cost_usd / 2)  # OpenAI's 50 %
    assert flex.batch_saved_usd == pytest.approx(standard.cost_usd - flex.cost_usd)


def _savings(text: str, mechanism: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "thrifty_savings_usd_total" and s.labels.get("mechanism") == mechanism
    )


def _spend(text: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "thrifty_spend_usd_total"
    )


def test_a_flex_request_is_a_batch_discount_row() -> None:
    with FakeOpenAI() as fake, gateway(fake_config(fake.base_url)) as (url, app):
        asked = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}]}
        plain = web.post(f"{url}/v1/chat/completions", json=asked)
        flex = web.post(
            f"{url}/v1/chat/completions",
            json={**asked, "messages": [{"role": "user", "content": "hi again"}],
                  "service_tier": "flex"},
        )  # fmt: skip
        assert plain.status_code == flex.status_code == 200
        assert fake.requests[-1]["service_tier"] == "flex"  # forwarded as asked
        metrics = web.get(f"{url}/metrics").text
        writer = app.state.gateway.ledger
        writer.flush()
        miss, discounted = writer.ledger.rows()
    assert miss.mechanism == Mechanism.MISS and miss.baseline_cost_usd == miss.cost_usd
    assert discounted.mechanism == Mechanism.BATCH_DISCOUNT
    assert discounted.baseline_cost_usd == pytest.approx(2 * discounted.cost_usd)
    assert float(flex.headers["x-thrifty-cost-usd"]) == pytest.approx(discounted.cost_usd)
    saved = discounted.baseline_cost_usd - discounted.cost_usd
    assert float(flex.headers["x-thrifty-saved-usd"]) == pytest.approx(saved)
    assert _savings(metrics, "batch_discount") == pytest.approx(saved)


def test_a_flex_stream_is_a_batch_discount_row() -> None:
    """A stream's tier comes from its chunks: priced at Batch API rates once it ended."""
    with FakeOpenAI() as fake, gateway(fake_config(fake.base_url)) as (url, app):
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "stream me a label"}],
            "service_tier": "flex",
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        streamed = web.post(f"{url}/v1/chat/completions", json=body)
        assert streamed.status_code == 200 and "[DONE]" in streamed.text
        writer = app.state.gateway.ledger
        # a stream is accounted after its last chunk went out, off the response's path
        deadline = time.monotonic() + 10
        while True:
            writer.flush()
            rows = writer.ledger.rows()
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        (row,) = rows
    assert row.mechanism == Mechanism.BATCH_DISCOUNT
    assert row.cost_usd > 0 and row.baseline_cost_usd == pytest.approx(2 * row.cost_usd)


def test_a_routed_flex_answer_counts_routing_and_the_discount_once() -> None:
    """Routed down and billed at batch rates: the row is ``routed_down``, its baseline the
    strong model's standard price, and /metrics splits the saving between the two without
    counting the discount twice."""
    entry = {"api_key": "k", "model_name": "cheap", "model": "openai/gpt-4o-mini"}
    with FakeOpenAI() as fake:
        config = fake_config(
            fake.base_url,
            model_list=[
                {**entry, "api_base": fake.base_url},
                {**entry, "api_base": fake.base_url, "model_name": "strong",
                 "model": "openai/gpt-4o"},
            ],
            routes=[{"name": "thrifty/auto", "chain": ["cheap", "strong"]}],
        )  # fmt: skip
        with gateway(config) as (url, app):
            body = {
                "model": "thrifty/auto",
                "messages": [{"role": "user", "content": "what are your opening hours?"}],
                "service_tier": "flex",
            }
            assert web.post(f"{url}/v1/chat/completions", json=body).status_code == 200
            metrics = web.get(f"{url}/metrics").text
            writer = app.state.gateway.ledger
            writer.flush()
            (row,) = writer.ledger.rows()
    strong = PriceTable().cost("gpt-4o", row.tokens_in, row.tokens_out)
    cheap_standard = PriceTable().cost("gpt-4o-mini", row.tokens_in, row.tokens_out)
    assert row.mechanism == Mechanism.ROUTED_DOWN
    assert row.cost_usd == pytest.approx(cheap_standard / 2)
    assert row.baseline_cost_usd == pytest.approx(strong)
    assert _savings(metrics, "routing") == pytest.approx(strong - cheap_standard)
    assert _savings(metrics, "batch_discount") == pytest.approx(cheap_standard / 2)


def _job(lines: list[tuple[str, str, bool]]) -> bytes:
    rows = []
    for custom_id, prompt, flex in lines:
        body: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": prompt}],
        }
        if flex:
            body["service_tier"] = "flex"
        rows.append(
            {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
        )
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_gateway_batch_lines_reach_the_ledger_with_their_discount(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("THRIFTY_BATCH_DIR", str(tmp_path / "batches"))
    with FakeOpenAI() as fake:
        config = fake_config(fake.base_url, keys=[{"key": "sk-a", "tenant": "team-a"}])
        with gateway(config) as (url, app):
            client = sdk(url, "sk-a")
            data = _job([("f1", "label this review", True), ("s1", "and this one", False),
                         ("f2", "label this review", True)])  # fmt: skip
            uploaded = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
            batch = client.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
            )
            deadline = time.monotonic() + 30
            while client.batches.retrieve(batch.id).status != "completed":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            writer = app.state.gateway.ledger
            writer.flush()
            rows = {r.request_id.rsplit("-", 1)[-1]: r for r in writer.ledger.rows()}
            summary = writer.ledger.summary(tenant="team-a")
            metrics = web.get(f"{url}/metrics").text
    assert set(rows) == {"f1", "s1", "f2"}
    assert {r.request_id.rsplit("-", 1)[0] for r in rows.values()} == {batch.id}
    paid = rows["f1"]
    assert paid.mechanism == Mechanism.BATCH_DISCOUNT and paid.tenant == "team-a"
    assert paid.baseline_cost_usd == pytest.approx(2 * paid.cost_usd) and paid.cost_usd > 0
    assert paid.latency_ms > 0
    assert rows["s1"].mechanism == Mechanism.MISS
    assert rows["s1"].baseline_cost_usd == rows["s1"].cost_usd > 0
    # the identical line: answered once, worth what the first one cost at flex rates
    assert rows["f2"].mechanism in (Mechanism.COALESCED, Mechanism.EXACT_HIT)
    assert rows["f2"].cost_usd == 0.0
    assert rows["f2"].baseline_cost_usd == pytest.approx(paid.cost_usd)
    assert summary.by_mechanism["batch_discount"].saved_usd == pytest.approx(paid.cost_usd)
    # /metrics counts the lines' spend and savings as the ledger does
    assert _savings(metrics, "batch_discount") == pytest.approx(paid.cost_usd)
    assert _spend(metrics) == pytest.approx(summary.totals.cost_usd)
    assert sum(_savings(metrics, m) for m in ("batch_discount", "coalesced", "exact_hit")) == (
        pytest.approx(summary.totals.saved_usd)
    )
