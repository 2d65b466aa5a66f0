"""Provider prompt caching counted right: cache reads and writes of OpenAI, Anthropic and Gemini
priced at their own rates, in plain answers and in streams (their final usage chunk)."""

from __future__ import annotations

from typing import Any

import pytest

from _gateway import fake_config, gateway, stored, web
from thrifty.accounting import ModelPrice, PriceTable, Usage, usage_details
from thrifty.ledger import Mechanism
from thrifty.server.config import parse_config
from thrifty.testing.fake_anthropic import FakeAnthropic
from thrifty.testing.fake_openai import FakeOpenAI

MINI = PriceTable().get("gpt-4o-mini")
HAIKU = PriceTable().get("claude-3-5-haiku")


@pytest.mark.parametrize(
    ("response", "want"),
    [
        (  # OpenAI (and Gemini's OpenAI endpoint): prompt_tokens includes the cached ones
            {"usage": {"prompt_tokens": 100, "completion_tokens": 9,
                       "prompt_tokens_details": {"cached_tokens": 64}}},
            Usage(100, 9, 64, 0),
        ),
        (  # Anthropic: input_tokens excludes cache reads and writes
            {"usage": {"input_tokens": 12, "output_tokens": 7, "cache_read_input_tokens": 30,
                       "cache_creation_input_tokens": 40}},
            Usage(82, 7, 30, 40),
        ),
        (  # an Anthropic answer in OpenAI's shape, the cache write kept (LiteLLM's form)
            {"usage": {"prompt_tokens": 82, "completion_tokens": 7,
                       "prompt_tokens_details": {"cached_tokens": 30},
                       "cache_creation_input_tokens": 40}},
            Usage(82, 7, 30, 40),
        ),
        (  # Gemini's own API: promptTokenCount includes cachedContentTokenCount
            {"usageMetadata": {"promptTokenCount": 500, "candidatesTokenCount": 20,
                               "thoughtsTokenCount": 5, "cachedContentTokenCount": 400}},
            Usage(500, 25, 400, 0),
        ),
        (  # OpenAI's Responses API
            {"usage": {"input_tokens": 50, "output_tokens": 3,
                       "input_tokens_details": {"cached_tokens": 32}}},
            Usage(50, 3, 32, 0),
        ),
        ({"usage": {"prompt_tokens": 5, "completion_tokens": 1}}, Usage(5, 1, 0, 0)),
        ({"choices": []}, None),
    ],
)  # fmt: skip
def test_usage_in_every_providers_shape(response: dict[str, Any], want: Usage | None) -> None:
    assert usage_details(response) == want


def test_reads_and_writes_are_priced_at_their_own_rates() -> None:
    price = ModelPrice(
        input_cost_per_token=1e-6,
        output_cost_per_token=4e-6,
        cache_read_input_token_cost=1e-7,
        cache_creation_input_token_cost=1.25e-6,
    )
    cost = price.cost(100, 10, cached_in=60, cache_write=30)
    assert cost == pytest.approx(10 * 1e-6 + 60 * 1e-7 + 30 * 1.25e-6 + 10 * 4e-6)
    bare = ModelPrice(input_cost_per_token=1e-6, output_cost_per_token=4e-6)
    assert bare.cost(100, 10, cached_in=60, cache_write=30) == pytest.approx(bare.cost(100, 10))
    table = PriceTable()
    assert table.get("claude-3-5-sonnet").cache_creation_input_token_cost == 3.75e-06  # type: ignore[union-attr]
    assert table.get("gemini-2.5-flash").cache_read_input_token_cost == 7.5e-08  # type: ignore[union-attr]


def _rows(app: Any) -> list[Any]:
    writer = app.state.gateway.ledger
    writer.flush()
    return writer.ledger.rows()


def _expected(price: ModelPrice | None, usage: Usage) -> float:
    assert price is not None
    return price.cost(
        usage.prompt, usage.completion, cached_in=usage.cached, cache_write=usage.cache_write
    )


def test_openai_cached_tokens_in_plain_answers_and_streams(fake: FakeOpenAI) -> None:
    fake.cached_tokens = 8
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a b c d e f g h"}]}
    with gateway(fake_config(fake.base_url)) as (url, app):
        plain = web.post(f"{url}/v1/chat/completions", json=body)
        usage = usage_details(plain.json())
        assert usage is not None and usage.cached == 8
        cost = _expected(MINI, usage)
        assert float(plain.headers["x-thrifty-cost-usd"]) == pytest.approx(cost, rel=1e-6)
        assert cost < MINI.cost(usage.prompt, usage.completion)  # type: ignore[union-attr]
        streamed = {**body, "messages": [{"role": "user", "content": "a b c d e f g i"}]}
        with web.stream(
            "POST", f"{url}/v1/chat/completions", json={**streamed, "stream": True}
        ) as r:
            assert r.status_code == 200
            assert not any('"usage"' in line for line in r.iter_lines())  # not asked for
        stored(url)
        rows = _rows(app)
    assert len(rows) == 2  # the plain answer and the stream, whose final usage chunk was read
    assert {r.mechanism for r in rows} == {Mechanism.PROVIDER_CACHE_READ}
    assert [r.tokens_cached for r in rows] == [8, 8]


def test_stream_and_plain_answers_cost_the_same_with_cached_tokens(fake: FakeOpenAI) -> None:
    fake.cached_tokens = 8
    with gateway(fake_config(fake.base_url)) as (url, app):
        for i, stream in enumerate((False, True)):
            body = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"same length question {i}"}],
                "stream": stream,
            }
            web.post(f"{url}/v1/chat/completions", json=body)
        stored(url)
        plain, streamed = _rows(app)
    assert plain.tokens_cached == streamed.tokens_cached == 8
    assert (plain.tokens_in, plain.tokens_out) == (streamed.tokens_in, streamed.tokens_out)
    assert streamed.cost_usd == pytest.approx(plain.cost_usd, rel=1e-12)
    full = MINI.cost(plain.tokens_in, plain.tokens_out)  # type: ignore[union-attr]
    assert streamed.baseline_cost_usd == pytest.approx(full, rel=1e-12)
    assert streamed.cost_usd < full


def test_anthropic_cache_reads_and_writes_in_plain_answers_and_streams() -> None:
    with FakeAnthropic() as fake:
        fake.cache_write = 4
        config = parse_config(
            {
                "model_list": [
                    {
                        "model_name": "claude",
                        "litellm_params": {
                            "model": "anthropic/claude-3-5-haiku",
                            "api_base": fake.base_url,
                            "api_key": "k",
                        },
                    }
                ],
                "cache": {"url": "memory://"},
            },
            source="test.yaml",
        )
        want = _expected(HAIKU, Usage(12 + 3 + 4, 7, 3, 4))
        with gateway(config) as (url, app):
            plain = web.post(
                f"{url}/v1/chat/completions",
                json={"model": "claude", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert float(plain.headers["x-thrifty-cost-usd"]) == pytest.approx(want, rel=1e-6)
            body = {
                "model": "claude",
                "stream": True,
                "messages": [{"role": "user", "content": "yo"}],
            }
            with web.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
                assert r.status_code == 200
                list(r.iter_lines())
            stored(url)
            rows = _rows(app)
    assert len(rows) == 2
    for row in rows:
        assert (row.tokens_in, row.tokens_out, row.tokens_cached) == (19, 7, 3)
        assert row.cost_usd == pytest.approx(want, rel=1e-9)
