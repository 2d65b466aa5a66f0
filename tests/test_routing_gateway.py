"""Route models through the gateway: rules, the learned router, cascades on unusable answers,
the X-Thrifty-Route header, routing savings, metrics and feedback. Upstreams are two FakeOpenAI
servers (FAKES that answer at once with scripted text), a "cheap" and a "strong" one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from _gateway import gateway, serving, web
from thrifty.errors import ConfigError
from thrifty.routing.router import train_router
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.server.app import create_app
from thrifty.server.config import GatewayConfig, parse_config
from thrifty.testing.fake_openai import FakeOpenAI

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def cheap_reply(request: dict[str, Any], number: int) -> str:
    """The cheap fake's script: the prompt says how it fails."""
    text = request["messages"][-1]["content"]
    scripted = {
        "give json": "sure, here it is: name=cheap",
        "give bad schema": '{"name": 3}',
        "say nothing": "  ",
        "refuse": "I'm sorry, but I can't help with that.",
    }
    if text in scripted:
        return scripted[text]
    return '{"name": "cheap"}' if "json" in text else f"cheap: {text}"


def strong_reply(request: dict[str, Any], number: int) -> str:
    text = request["messages"][-1]["content"]
    return '{"name": "strong"}' if request.get("response_format") else f"strong: {text}"


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI(cheap_reply) as cheap, FakeOpenAI(strong_reply) as strong:
        yield cheap, strong


def route_config(
    cheap: FakeOpenAI, strong: FakeOpenAI, tmp_path: Path, **route: Any
) -> GatewayConfig:
    data = {
        "model_list": [
            {
                "model_name": "cheap",
                "model": "openai/gpt-4o-mini",
                "api_base": cheap.base_url,
                "api_key": "sk-fake",
            },
            {
                "model_name": "strong",
                "model": "openai/gpt-4o",
                "api_base": strong.base_url,
                "api_key": "sk-fake",
            },
        ],
        "router_settings": {"num_retries": 0, "retry_base_delay": 0.0, "timeout": 10},
        "cache": {"url": "memory://"},
        "routes": [
            {
                "name": "thrifty/auto",
                "chain": ["cheap", "strong"],
                "rules": [{"when": {"code": True}, "to": "strong"}],
                "feedback_path": str(tmp_path / "outcomes.jsonl"),
                **route,
            }
        ],
    }
    return parse_config(data, source=str(tmp_path / "gateway.yaml"))


@pytest.fixture
def served(upstreams: tuple[FakeOpenAI, FakeOpenAI], tmp_path: Path) -> Iterator[str]:
    with gateway(route_config(*upstreams, tmp_path)) as (url, _):
        yield url


def ask(url: str, text: str, **extra: Any) -> httpx.Response:
    body = {"model": "thrifty/auto", "messages": [{"role": "user", "content": text}], **extra}
    response = web.post(f"{url}/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response


def content(response: httpx.Response) -> str:
    return response.json()["choices"][0]["message"]["content"]


def metric(url: str, name: str) -> float:
    for line in web.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_plain_request_goes_to_the_cheap_model_and_saves(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], served: str
) -> None:
    cheap, strong = upstreams
    response = ask(served, "what are your opening hours?")
    assert content(response) == "cheap: what are your opening hours?"
    assert response.headers["x-thrifty-route"] == "thrifty/auto -> cheap (default)"
    assert len(response.headers["x-thrifty-route-id"]) == 16
    cost, saved = (
        float(response.headers[h]) for h in ("x-thrifty-cost-usd", "x-thrifty-saved-usd")
    )
    assert cost > 0 and saved > 10 * cost  # gpt-4o costs ~16x gpt-4o-mini
    assert (cheap.calls["chat"], strong.calls["chat"]) == (1, 0)
    assert metric(
        served, 'thrifty_savings_usd_total{mechanism="routing",model="thrifty/auto"}'
    ) == pytest.approx(saved)
    assert (
        metric(
            served, 'thrifty_route_decisions_total{by="default",model="cheap",route="thrifty/auto"}'
        )
        == 1
    )


def test_a_rule_sends_code_to_the_strong_model(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], served: str
) -> None:
    cheap, strong = upstreams
    response = ask(served, "why does this fail?\n```python\nprint(1/0)\n```")
    assert response.headers["x-thrifty-route"] == "thrifty/auto -> strong (rule code)"
    assert content(response).startswith("strong:")
    assert float(response.headers["x-thrifty-saved-usd"]) == 0
    assert (cheap.calls["chat"], strong.calls["chat"]) == (0, 1)


@pytest.mark.parametrize(
    ("text", "extra", "reason"),
    [
        ("give json", {"response_format": {"type": "json_object"}}, "invalid_json"),
        (
            "give bad schema",
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "person", "schema": SCHEMA},
                }
            },
            "schema_mismatch",
        ),
        ("say nothing", {}, "empty"),
        ("refuse", {}, "refusal"),
    ],
)
def test_an_unusable_cheap_answer_cascades_to_the_strong_model(
    upstreams: tuple[FakeOpenAI, FakeOpenAI],
    served: str,
    tmp_path: Path,
    text: str,
    extra: dict[str, Any],
    reason: str,
) -> None:
    cheap, strong = upstreams
    response = ask(served, text, **extra)
    assert response.headers["x-thrifty-route"] == (
        f"thrifty/auto -> cheap (default) -> strong (cascade: {reason})"
    )
    assert content(response).startswith(("strong", '{"name": "strong"}'))
    assert (cheap.calls["chat"], strong.calls["chat"]) == (1, 1)
    assert metric(served, f'thrifty_cascade_total{{reason="{reason}",route="thrifty/auto"}}') == 1
    # Both answers were paid for: routing saved less than the whole gpt-4o price.
    assert float(response.headers["x-thrifty-saved-usd"]) < 0
    outcome = json.loads((tmp_path / "outcomes.jsonl").read_text().splitlines()[-1])
    assert outcome == {
        "prompt": text,
        "cheap_ok": False,
        "route": "thrifty/auto",
        "source": f"cascade:{reason}",
    }


def test_good_json_from_the_cheap_model_is_kept(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], served: str
) -> None:
    response = ask(
        served,
        "json please",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": SCHEMA},
        },
    )
    assert content(response) == '{"name": "cheap"}'
    assert "cascade" not in response.headers["x-thrifty-route"]
    assert upstreams[1].calls["chat"] == 0


def test_a_failing_cheap_model_cascades_on_upstream_error(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], served: str
) -> None:
    cheap = upstreams[0]
    cheap.fail_next(1, status=503)
    response = ask(served, "hello there")
    assert response.headers["x-thrifty-route"].endswith("-> strong (cascade: upstream_error)")
    assert content(response) == "strong: hello there"


def test_streams_are_routed(upstreams: tuple[FakeOpenAI, FakeOpenAI], served: str) -> None:
    body = {
        "model": "thrifty/auto",
        "stream": True,
        "messages": [{"role": "user", "content": "stream me"}],
    }
    with web.stream("POST", f"{served}/v1/chat/completions", json=body) as response:
        text = response.read().decode()
    assert response.headers["x-thrifty-route"] == "thrifty/auto -> cheap (default)"
    assert "cheap:" in text and text.rstrip().endswith("data: [DONE]")


def test_feedback_on_the_cheap_answer_becomes_an_outcome(served: str, tmp_path: Path) -> None:
    cheap_id = ask(served, "what is my balance?").headers["x-thrifty-route-id"]
    strong_id = ask(served, "def f():\n    return 1").headers["x-thrifty-route-id"]
    url = f"{served}/v1/thrifty/feedback"
    ok = web.post(url, json={"route_id": cheap_id, "correct": True})
    assert ok.json() == {"route_id": cheap_id, "recorded": True}
    not_cheap = web.post(url, json={"route_id": strong_id, "correct": True}).json()
    assert not_cheap["recorded"] is False and "strong answered" in not_cheap["why"]
    unknown = web.post(url, json={"route_id": "nope", "correct": True})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_route_id"
    both = web.post(url, json={"route_id": cheap_id, "hit_id": "x", "correct": True})
    assert both.status_code == 400
    lines = [json.loads(x) for x in (tmp_path / "outcomes.jsonl").read_text().splitlines()]
    assert lines == [
        {
            "prompt": "what is my balance?",
            "cheap_ok": True,
            "route": "thrifty/auto",
            "source": "feedback",
        }
    ]


def test_the_learned_router_decides_when_no_rule_does(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], tmp_path: Path
) -> None:
    embedder = HashingEmbedder(64)
    easy = [f"what time do you open on day {i}" for i in range(60)]
    hard = [f"derive the closed form of integral number {i} with proof" for i in range(60)]
    router = train_router(
        embedder.embed(easy + hard),
        np.array([1.0] * 60 + [0.0] * 60),
        embedder="hashing",
        target_strong_share=0.5,
    )
    router.save(tmp_path / "router.json")
    config_file = tmp_path / "gateway.yaml"  # a relative router path is read beside it
    config_file.write_text("# the test passes the parsed config\n")
    config = route_config(*upstreams, tmp_path, router={"path": "router.json"})
    with serving(create_app(config, source=str(config_file))) as url:
        easy_route = ask(url, "what time do you open").headers["x-thrifty-route"]
        hard_route = ask(url, "derive the closed form with proof").headers["x-thrifty-route"]
    assert easy_route.startswith("thrifty/auto -> cheap (router p=")
    assert hard_route.startswith("thrifty/auto -> strong (router p=")
    assert "<" in hard_route and ">=" in easy_route


def test_models_list_and_unsupported_operations(served: str) -> None:
    models = [m["id"] for m in web.get(f"{served}/v1/models").json()["data"]]
    assert "thrifty/auto" in models
    refused = web.post(f"{served}/v1/embeddings", json={"model": "thrifty/auto", "input": "x"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unsupported_operation"


def test_config_errors_name_the_field_and_the_file(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], tmp_path: Path
) -> None:
    config = route_config(*upstreams, tmp_path, router={"path": "missing.json"})
    with pytest.raises(ConfigError, match=r"gateway\.yaml: routes\[0\]\.router: .*missing\.json"):
        create_app(config, source=str(tmp_path / "gateway.yaml"))
    with pytest.raises(ConfigError, match=r"routes\[0\]\.chain names model 'gpt-9'"):
        parse_config(
            {
                "model_list": [{"model_name": "a", "model": "openai/a"}],
                "routes": [{"name": "auto", "chain": ["a", "gpt-9"]}],
            },
            source="g.yaml",
        )


def test_text_completions_are_routed_too(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], served: str
) -> None:
    response = web.post(
        f"{served}/v1/completions",
        timeout=10,
        json={"model": "thrifty/auto", "prompt": "Once upon a time"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-thrifty-route"] == "thrifty/auto -> cheap (default)"
    assert response.json()["choices"][0]["text"] == "Reply 1: Once upon a time"
    assert (upstreams[0].calls["completions"], upstreams[1].calls["completions"]) == (1, 0)


def test_route_feedback_only_from_the_tenant_that_got_the_answer(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], tmp_path: Path
) -> None:
    """Tenant B cannot record a verdict on tenant A's route decision, even with its id: the
    answer is the same 404 as for an unknown id, and nothing reaches the outcomes file."""
    data = route_config(*upstreams, tmp_path).model_dump()
    data["keys"] = [{"key": "sk-a", "tenant": "a"}, {"key": "sk-b", "tenant": "b"}]
    with gateway(parse_config(data)) as (url, _):
        body = {"model": "thrifty/auto", "messages": [{"role": "user", "content": "my balance?"}]}
        answered = web.post(
            f"{url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-a"}
        )
        route_id = answered.headers["x-thrifty-route-id"]
        feedback = f"{url}/v1/thrifty/feedback"
        verdict = {"route_id": route_id, "correct": False}
        stolen = web.post(feedback, json=verdict, headers={"Authorization": "Bearer sk-b"})
        assert stolen.status_code == 404
        assert stolen.json()["error"]["code"] == "unknown_route_id"
        assert not (tmp_path / "outcomes.jsonl").exists()
        own = web.post(feedback, json=verdict, headers={"Authorization": "Bearer sk-a"})
        assert own.json() == {"route_id": route_id, "recorded": True}
