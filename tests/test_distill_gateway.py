"""The student in the gateway: ``student/<model_dir>`` deployments answering first in a route or
with a fallback, the teacher answering deferred requests, X-Thrifty-Route, savings as mechanism
``student``, streams, teacher pairs recorded (PII skipped), and the provider on its own."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _distill_data import make_pairs
from _gateway import fake_config, gateway, web
from thrifty.distill import Featurizer, StudentConfig, save_student, train_student
from thrifty.distill.gate import Gate
from thrifty.providers.student import StudentDeferred, StudentProvider
from thrifty.testing.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same student twice: one whose bar every answer clears, one that always defers."""
    pairs = make_pairs(240, seed=3)
    student = train_student(
        [p.input for p in pairs],
        [p.output or "" for p in pairs],
        featurizer=Featurizer(embedder="hashing", lexical_dim=128),
        config=StudentConfig(target_agreement=0.9),
    )
    root = tmp_path_factory.mktemp("students")
    sure = dataclasses.replace(student, gate=Gate(threshold=0.0, score=student.gate.score))
    shy = dataclasses.replace(student, gate=Gate(threshold=float("inf"), score="margin"))
    return {"sure": save_student(sure, root / "sure"), "shy": save_student(shy, root / "shy")}


def config(fake: FakeOpenAI, student: Path, **overrides: Any) -> Any:
    base = fake_config(fake.base_url)
    models = [m.model_dump() for m in base.model_list]
    models.append({"model_name": "intents", "litellm_params": {"model": f"student/{student}"}})
    data: dict[str, Any] = {
        "model_list": models,
        "routes": [{"name": "support", "chain": ["intents", "gpt-4o-mini"]}],
        "prices": {"gpt-4o-mini": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}},
        **overrides,
    }
    return fake_config(fake.base_url, **data)


def ask(text: str, model: str = "support", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    return web.post(f"{url}/v1/chat/completions", json=body)


def savings(url: str, mechanism: str) -> float:
    total = 0.0
    for line in web.get(f"{url}/metrics").text.splitlines():
        if line.startswith("thrifty_savings_usd_total{") and f'mechanism="{mechanism}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    return tmp_path / "pairs.jsonl"


@pytest.fixture
def sure(fake: FakeOpenAI, model_dirs: dict[str, Path], recorded: Path) -> Iterator[str]:
    cfg = config(fake, model_dirs["sure"], distill={"record": str(recorded)})
    with gateway(cfg) as (url, _):
        yield url


def test_confident_student_answers_instead_of_the_teacher(
    sure: str, fake: FakeOpenAI, recorded: Path
) -> None:
    response = post(sure, ask("my card has not arrived yet please"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "card_arrival"
    assert body["object"] == "chat.completion" and body["usage"]["prompt_tokens"] > 0
    assert "student p=" in response.headers["x-thrifty-route"]
    assert response.headers["x-thrifty-route"].startswith("support -> intents")
    assert fake.calls["chat"] == 0
    assert float(response.headers["x-thrifty-saved-usd"]) > 0
    assert savings(sure, "student") > 0
    assert not recorded.exists()  # the student's own answers are not teacher pairs
    again = post(sure, ask("my card has not arrived yet please"))
    assert again.headers["x-thrifty-cache-status"] == "HIT"


def test_streamed_request_gets_the_student_answer_as_sse(sure: str, fake: FakeOpenAI) -> None:
    with web.stream(
        "POST", f"{sure}/v1/chat/completions", json=ask("reset the pin code app", stream=True)
    ) as response:
        text = response.read().decode()
    assert response.status_code == 200
    assert "pin_change" in text and text.rstrip().endswith("data: [DONE]")
    assert fake.calls["chat"] == 0


def test_deferring_student_hands_over_to_the_teacher_and_pairs_are_recorded(
    fake: FakeOpenAI, model_dirs: dict[str, Path], recorded: Path
) -> None:
    cfg = config(
        fake,
        model_dirs["shy"],
        distill={"record": str(recorded)},
        cache={"url": "memory://", "pii": "skip_store"},
        router_settings={"fallbacks": [{"intents": ["gpt-4o-mini"]}], "num_retries": 0},
    )
    with gateway(cfg) as (url, _):
        routed = post(url, ask("where is my card"))
        assert routed.status_code == 200, routed.text
        assert fake.calls["chat"] == 1
        assert "student deferred" in routed.headers["x-thrifty-route"]
        direct = post(url, ask("how to top up", model="intents"))  # its fallback answers
        assert direct.status_code == 200 and fake.calls["chat"] == 2
        post(url, ask("mail me at jane.doe@example.com"))  # personal data: not recorded
        plain = post(url, ask("hello", model="backup"))  # every model is recorded by default
        assert plain.status_code == 200
    lines = [json.loads(line) for line in recorded.read_text().splitlines()]
    assert [p["input"] for p in lines] == ["where is my card", "how to top up", "hello"]
    assert all(p["output"] for p in lines)


def test_student_without_a_teacher_says_so(fake: FakeOpenAI, model_dirs: dict[str, Path]) -> None:
    with gateway(config(fake, model_dirs["shy"])) as (url, _):
        response = post(url, ask("where is my card", model="intents"))
    assert response.status_code >= 500
    assert "defers" in response.json()["error"]["message"]


async def test_provider_answers_and_memoises(model_dirs: dict[str, Path]) -> None:
    provider = StudentProvider(model_dirs["sure"])
    body = ask("refund the purchase please")
    answer = await provider.chat(body)
    assert answer["choices"][0]["message"]["content"] == "refund"
    assert provider._memo  # the second request skips the featurizer
    chunks = [c async for c in provider.chat_stream(body)]
    assert chunks[0]["choices"][0]["delta"]["content"] == "refund"
    with pytest.raises(StudentDeferred) as info:
        await StudentProvider(model_dirs["shy"]).chat(body)
    assert 0.0 <= info.value.confidence <= 1.0


def with_dead_model(fake: FakeOpenAI, student: Path, **overrides: Any) -> Any:
    """:func:`config` plus ``dead``: a deployment nobody answers at (connection refused)."""
    models = [m.model_dump() for m in config(fake, student).model_list]
    models.append(
        {
            "model_name": "dead",
            "litellm_params": {
                "model": "openai/x",
                "api_base": "http://127.0.0.1:9",
                "api_key": "sk-fake",
            },
        }
    )
    return config(fake, student, model_list=models, **overrides)


def test_deferral_keeps_the_routes_rules_and_cascades(
    fake: FakeOpenAI, model_dirs: dict[str, Path]
) -> None:
    """A student that defers hands the request to the rest of its route: the rules still pick
    among the later models, and a failing model still cascades onwards."""
    cfg = with_dead_model(
        fake,
        model_dirs["shy"],
        routes=[
            {
                "name": "support",
                "chain": ["intents", "gpt-4o-mini", "backup"],
                "rules": [
                    {"when": {"keywords": ["refund"]}, "to": "backup"},
                    {"when": {"keywords": ["card"]}, "to": "intents"},
                ],
            },
            {"name": "flaky", "chain": ["intents", "dead", "backup"]},
        ],
        router_settings={"num_retries": 0, "retry_base_delay": 0.0},
    )
    with gateway(cfg) as (url, _):
        refund = post(url, ask("where is my refund"))
        assert refund.status_code == 200, refund.text
        header = refund.headers["x-thrifty-route"]
        assert header.startswith("support -> intents (student deferred")
        assert "support -> backup (rule" in header  # the rule chose among the rest
        card = post(url, ask("where is my card"))  # a rule naming the student: the next model
        assert card.status_code == 200, card.text
        assert "support -> gpt-4o-mini" in card.headers["x-thrifty-route"]
        assert "intents declined" in card.headers["x-thrifty-route"]
        flaky = post(url, ask("hello there", model="flaky"))
        assert flaky.status_code == 200, flaky.text
        assert "-> backup (cascade: upstream_error)" in flaky.headers["x-thrifty-route"]
    assert fake.calls["chat"] == 3


def test_deferral_to_fallbacks_tries_them_in_order(
    fake: FakeOpenAI, model_dirs: dict[str, Path]
) -> None:
    cfg = with_dead_model(
        fake,
        model_dirs["shy"],
        router_settings={
            "fallbacks": [{"intents": ["dead", "gpt-4o-mini"]}],
            "num_retries": 0,
            "retry_base_delay": 0.0,
        },
    )
    with gateway(cfg) as (url, _):
        response = post(url, ask("how to top up", model="intents"))
    assert response.status_code == 200, response.text
    assert "student deferred" in response.headers["x-thrifty-route"]
    assert fake.calls["chat"] == 1


def sse_text(raw: str) -> str:
    """The assembled content of an SSE chat stream."""
    parts = []
    for line in raw.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices") or []:
                parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts)


def test_streamed_teacher_answers_are_recorded_once_the_stream_ended(
    fake: FakeOpenAI, model_dirs: dict[str, Path], recorded: Path
) -> None:
    cfg = config(fake, model_dirs["shy"], distill={"record": str(recorded)})
    with gateway(cfg) as (url, _):
        with web.stream(
            "POST", f"{url}/v1/chat/completions", json=ask("where is my card", stream=True)
        ) as response:
            raw = response.read().decode()
        assert response.status_code == 200 and raw.rstrip().endswith("data: [DONE]")
        deadline = time.monotonic() + 5
        while not recorded.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    lines = [json.loads(line) for line in recorded.read_text().splitlines()]
    assert lines == [{"input": "where is my card", "output": sse_text(raw)}]
    assert lines[0]["output"]
