"""Replays a workload through the gateway in-process, once per step, each step switching one
more mechanism on: none -> exact -> semantic -> routing -> compression -> student (support
questions go to a route whose first model is a student trained before the step).

Every step is a fresh gateway (``create_app`` under Starlette's ``TestClient``, which runs its
lifespan; no sockets) with an empty cache and a memory ledger, in front of the FAKE upstream of
:mod:`thrifty.replay.upstream`. Requests go one at a time, so the ledger's rows are in request
order; each record is the ledger's row for the request plus what the replay knows about quality
(whether the answer is right, whether it differs from the answer with every mechanism off).

The FAKE upstream answers at once; what a real one would take is simulated
(:class:`~thrifty.replay.upstream.UpstreamLatency`, per call and per output token) and added to
the gateway's measured latency as ``latency_total_ms``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from thrifty.ledger import LedgerSummary
from thrifty.replay.upstream import CHEAP_MODEL, DataReply, UpstreamLatency, correct
from thrifty.replay.workload import Item
from thrifty.server.app import create_app
from thrifty.server.config import GatewayConfig, parse_config
from thrifty.testing.fake_openai import FakeOpenAI
from thrifty.testing.inprocess import InProcessOpenAI

STRONG = "gpt-4o"
CHEAP = CHEAP_MODEL
ROUTE = "thrifty/auto"
STEPS = ("none", "exact", "semantic", "routing", "compression", "student")
STUDENT = "intents"
SUPPORT_ROUTE = "support"


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    cache: bool
    semantic: bool
    routing: bool
    compression: bool
    student: bool = False


def steps(names: tuple[str, ...] = STEPS) -> list[Step]:
    """Each step keeps the mechanisms of the ones before it on."""
    return [
        Step(
            name, cache=i >= 1, semantic=i >= 2, routing=i >= 3, compression=i >= 4, student=i >= 5
        )
        for i, name in enumerate(STEPS)
        if name in names
    ]


def step_config(
    step: Step,
    base_url: str,
    embedder: str,
    threshold: float | None = None,
    student_dir: Path | None = None,
) -> GatewayConfig:
    def deployment(name: str) -> dict[str, Any]:
        params = {"model": f"openai/{name}", "api_base": base_url, "api_key": "sk-fake"}
        return {"model_name": name, "litellm_params": params}

    data: dict[str, Any] = {
        "model_list": [deployment(STRONG), deployment(CHEAP)],
        "router_settings": {"num_retries": 0, "retry_base_delay": 0.0, "timeout": 60},
        "cache": {
            "enabled": step.cache,
            "url": "memory://",
            "semantic": step.semantic,
            "semantic_threshold": threshold,
            "embedder": embedder,
        },
        "ledger": {"url": "memory://", "retention_days": None},
        "routes": [{"name": ROUTE, "chain": [CHEAP, STRONG]}],
        "compression": {
            "enabled": step.compression,
            "ratio": 0.4,
            "min_tokens": 200,
            "embedder": embedder,
        },
    }
    if step.student and student_dir is not None:
        data["model_list"].append(
            {"model_name": STUDENT, "litellm_params": {"model": f"student/{student_dir}"}}
        )
        data["routes"].append({"name": SUPPORT_ROUTE, "chain": [STUDENT, CHEAP, STRONG]})
    return parse_config(data, source=f"replay step {step.name}")


@dataclass(slots=True)
class StepResult:
    records: list[dict[str, Any]]
    ledger: LedgerSummary
    """The step's ledger summary, read through the ledger's own API."""


def run_step(
    step: Step,
    traffic: list[Item],
    items: list[Item],
    *,
    embedder: str = "minilm",
    threshold: float | None = None,
    student_dir: Path | None = None,
    baseline_answers: list[str] | None = None,
    progress: Callable[[], None] | None = None,
    latency: UpstreamLatency | None = None,
) -> StepResult:
    """One step over the whole traffic: its records (ledger rows + quality flags, and the
    simulated upstream time of the calls each request made)."""
    intents = {item.answer: item.klass for item in items if item.kind == "support"}
    latency = latency or UpstreamLatency()
    answers: list[tuple[str, str, str]] = []
    calls: list[list[tuple[str, int]]] = []
    reply = DataReply(items)
    with FakeOpenAI(reply) as fake:
        config = step_config(step, fake.base_url, embedder, threshold, student_dir)
        app = create_app(config, lone_process=True, connect=InProcessOpenAI.connector(fake))
        with TestClient(app) as client:
            for item in traffic:
                model = ROUTE if step.routing else STRONG
                if step.student and item.kind == "support":
                    model = SUPPORT_ROUTE
                body = {"model": model, "messages": item.messages()}
                before = len(reply.calls)
                response = client.post("/v1/chat/completions", json=body)
                calls.append(reply.calls[before:])
                response.raise_for_status()
                answer = response.json()["choices"][0]["message"]["content"]
                answers.append(
                    (
                        answer,
                        response.headers.get("x-thrifty-cache-status", ""),
                        response.headers.get("x-thrifty-compression", ""),
                    )
                )
                if progress is not None:
                    progress()
            writer = app.state.gateway.ledger
            writer.flush()
            rows = writer.ledger.rows()
            summary = writer.ledger.summary()
    if len(rows) != len(traffic):
        raise RuntimeError(f"step {step.name}: {len(rows)} ledger rows for {len(traffic)} requests")
    records = []
    for index, (item, row, (answer, status, compression), upstream) in enumerate(
        zip(traffic, rows, answers, calls, strict=True)
    ):
        right = correct(item, answer, intents)
        upstream_ms = sum(latency.of(tokens) for _, tokens in upstream)
        records.append(
            {
                "step": step.name,
                "index": index,
                "kind": item.kind,
                "class": item.klass,
                "mechanism": str(row.mechanism),
                "model": row.model,
                "cache_status": status,
                "compression": compression,
                "cost_usd": row.cost_usd,
                "baseline_cost_usd": row.baseline_cost_usd,
                "tokens_in": row.tokens_in,
                "tokens_out": row.tokens_out,
                "latency_ms": row.latency_ms,
                "upstream_calls": len(upstream),
                "upstream_ms_simulated": upstream_ms,
                "latency_total_ms": row.latency_ms + upstream_ms,
                "correct": right,
                "wrong_hit": row.mechanism == "semantic_hit" and not right,
                "changed": baseline_answers is not None and answer != baseline_answers[index],
                "answer": answer,
            }
        )
    return StepResult(records, summary)
