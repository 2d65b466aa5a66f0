"""The student stages: a distilled student answers before the teacher, and teacher answers are
recorded as training pairs.

A student is a deployment (``model: student/<model_dir>``). It takes traffic in two shapes:

- a route whose chain starts with it (``routes: [{name: support, chain: [intents, gpt-4o]}]``):
  the teacher is the next model of the chain;
- its own model name with a fallback (``fallbacks: [{intents: [gpt-4o]}]``): the teacher is
  the first fallback.

:class:`StudentFirst` sits in both chains after ``Reserve`` (a cache hit never reaches it; a
student answer is limited like any other) and before the upstream stages: above its calibrated
bar the student's answer goes back (``X-Thrifty-Route: <model> -> <student> (student p=…)``),
its saving, what the teacher would have cost, credited as mechanism ``student``; under it the
request goes on to the rest of the chain (``ctx.chain_start``): a route's rules, router and
cascades choose among the models after the student, a student's fallbacks are tried in order.
:class:`RecordPairs` appends each teacher answer of the recorded models, streamed or not, to
``distill.record`` (``{"input", "output"}`` per line, what ``thrifty distill train`` reads),
never one holding personal data when the PII guard is on.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from thrifty.integrations._streams import chunks_from_completion
from thrifty.providers.student import StudentProvider
from thrifty.routing import DeploymentPool
from thrifty.routing.features import prompt_text
from thrifty.safety.pii import PIIDetector, request_has_pii, response_has_pii
from thrifty.server.accounting import Accountant
from thrifty.server.config import GatewayConfig
from thrifty.server.context import Handler, RequestContext, Stage
from thrifty.server.streaming import replay

#: The savings mechanism of student answers (``thrifty_savings_usd{mechanism=...}``).
MECHANISM = "student"


@dataclass(frozen=True, slots=True)
class StudentRoute:
    """A requested model name that a student answers first, and who answers when it defers."""

    student: str
    """The student's model name."""
    provider: StudentProvider
    teacher: str
    """The next model of the chain: what a student answer would otherwise have cost."""


def student_routes(config: GatewayConfig, pool: DeploymentPool) -> dict[str, StudentRoute]:
    """Requested model names (routes, students with fallbacks) -> their student and teacher."""
    students: dict[str, StudentProvider] = {}
    for entry in config.model_list:
        name = entry.model_name
        if entry.litellm_params.kind == "student" and name not in students:
            target = pool.deployments(name)[0].target
            if isinstance(target, StudentProvider):
                students[name] = target
    out: dict[str, StudentRoute] = {}
    for name, provider in students.items():
        fallbacks = config.fallbacks_for(name)
        if fallbacks:
            out[name] = StudentRoute(name, provider, fallbacks[0])
    for route in config.routes:
        first = route.chain[0]
        if first in students:
            out[route.name] = StudentRoute(first, students[first], route.chain[1])
    return out


def answer_text(response: Any) -> str | None:
    """The first choice's text of a ``chat.completion`` (None for anything else)."""
    if not isinstance(response, Mapping):
        return None
    choices = response.get("choices") or []
    if not choices or not isinstance(choices[0], Mapping):
        return None
    content = (choices[0].get("message") or {}).get("content")
    return content if isinstance(content, str) else None


class StudentFirst(Stage):
    """The student answers when it is confident; else the teacher does.

    Args:
        students: requested model name -> its student and teacher (:func:`student_routes`).
        accountant: prices the teacher's avoided cost and settles the reservation.
    """

    def __init__(
        self, next: Handler, *, students: Mapping[str, StudentRoute], accountant: Accountant
    ) -> None:
        super().__init__(next)
        self.students = students
        self.accountant = accountant

    async def __call__(self, ctx: RequestContext) -> Any:
        route = self.students.get(ctx.model or "")
        op = ctx.operation
        if route is None or op is None or op.method != "chat":
            return await self.next(ctx)
        answer, confidence = await route.provider.adecide(ctx.body)
        requested = ctx.model or ""
        if answer is None:  # the rest of the chain answers (and a recorder keeps its answer)
            ctx.chain_start = 1  # the route's rules, router, cascades and fallbacks still apply
            value = await self.next(ctx)
            ctx.route = f"{requested} -> {route.student} (student deferred p={confidence:.2f})" + (
                f" -> {ctx.route}" if ctx.route else ""
            )
            return value
        response = route.provider.response(ctx.body, answer)
        self._credit(ctx, requested, route, response, confidence)
        # no upstream tokens, no cost: what Reserve held back for the teacher is given back
        await self.accountant.limiter.settle(ctx.reservation, 0, 0.0)
        if ctx.stream:
            include = bool((ctx.body.get("stream_options") or {}).get("include_usage"))
            return replay(chunks_from_completion(response, include_usage=include))
        return response

    def _credit(
        self,
        ctx: RequestContext,
        requested: str,
        route: StudentRoute,
        response: Mapping[str, Any],
        confidence: float,
    ) -> None:
        pricer, metrics = self.accountant.pricer, self.accountant.metrics
        tokens_in, tokens_out, saved, _ = pricer.price_answer(route.teacher, ctx.body, response)
        ctx.route = f"{requested} -> {route.student} (student p={confidence:.2f})"
        ctx.answered_by = ctx.deployment_id = route.student
        ctx.cost_usd = 0.0
        ctx.saved_usd += saved
        ctx.mechanism = MECHANISM  # the ledger's row says the student answered, not "miss"
        ctx.fields = {
            "model": requested,
            "model_version": route.student,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost_usd": 0.0,
        }
        metrics.savings.labels(metrics.model_label(requested), MECHANISM).inc(saved)


class PairLog:
    """Appends teacher pairs to one JSONL file (a lock per file: workers' threads share it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, text: str, output: str) -> None:
        line = json.dumps({"input": text, "output": output}, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line)


class RecordPairs(Stage):
    """Teacher answers of the recorded models, appended as training pairs.

    Args:
        log: where pairs go.
        models: the model names recorded, requested or answering (None: all).
        students: student model names (their own answers are never recorded).
        detector: the PII guard's detector when it is on (pairs with personal data are skipped).
    """

    def __init__(
        self,
        next: Handler,
        *,
        log: PairLog,
        models: frozenset[str] | None,
        students: frozenset[str],
        detector: PIIDetector | None,
    ) -> None:
        super().__init__(next)
        self.log = log
        self.models = models
        self.students = students
        self.detector = detector

    async def __call__(self, ctx: RequestContext) -> Any:
        op = ctx.operation
        if op is None or op.method != "chat":
            return await self.next(ctx)
        if ctx.stream:  # recorded once the relayed stream ended, from its assembled completion
            ctx.stream_listeners.append(functools.partial(self._record, ctx))
            return await self.next(ctx)
        value = await self.next(ctx)
        await self._record(ctx, value)
        return value

    async def _record(self, ctx: RequestContext, value: Any) -> None:
        if ctx.answered_by in self.students:
            return
        if self.models is not None and not {ctx.model, ctx.answered_by} & self.models:
            return
        output = answer_text(value)
        if output is None or not output.strip():
            return
        detector = self.detector
        if detector is not None and (
            request_has_pii(detector, ctx.body) or response_has_pii(detector, value)
        ):
            return
        await anyio.to_thread.run_sync(self.log.append, prompt_text(ctx.body), output)
