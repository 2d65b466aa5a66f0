"""Route models in the gateway: decide, call, check the answer, cascade down the chain.

A request for a route model (``thrifty/auto``) starts at the model :class:`RouteModel` decides.
Each model of the chain is called through the deployment pool (its own retries and fallbacks);
when its deployments are used up, or its answer fails a check of
:mod:`thrifty.routing.validation`, the next model answers (``thrifty_cascade_total{reason}``).
Streams are routed but only cascade on upstream errors: their output is already on its way.

Accounting: answers thrown away still cost money (added to the request's cost); what routing
saved is the strong model's price for the answer's tokens minus everything paid
(``thrifty_savings_usd{mechanism="routing"}``, ``X-Thrifty-Saved-USD`` on a miss; credited by
:class:`~thrifty.server.accounting.Accountant`). A runner is given the pool, the metrics and the
pricer it uses when it is built, so it never reaches back into the gateway.
The last decisions are kept (per worker) so ``POST /v1/thrifty/feedback`` can turn a verdict on
the cheapest model's answer into a training outcome; a cascade off the cheapest model for a
failed check records one by itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from thrifty.errors import AllDeploymentsFailedError, ConfigError
from thrifty.routing import Deployment, DeploymentPool, Routed
from thrifty.routing.features import prompt_text
from thrifty.routing.outcomes import append_outcome
from thrifty.routing.route import RouteDecision, RouteModel
from thrifty.routing.router import LearnedRouter
from thrifty.routing.validation import CheckOptions, failed_check
from thrifty.server.config import GatewayConfig
from thrifty.server.errors import APIError
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.pricing import Pricer
from thrifty.server.route_config import RouteSettings
from thrifty.tracing import span

T = TypeVar("T")
#: Decisions remembered for feedback, per route and worker.
RECENT_DECISIONS = 10_000


@dataclass(slots=True)
class RouteTrace:
    """What a route did for one request (for headers, accounting and feedback)."""

    route: RouteModel
    decision: RouteDecision
    id: str
    cascades: list[tuple[str, str]] = field(default_factory=list)
    """(the model that took over, why the previous one was passed over)."""
    answered_by: str | None = None
    wasted_usd: float = 0.0
    """The cost of answers thrown away by cascades."""
    wasted_tokens: int = 0
    saved_usd: float = 0.0
    tenant: str | None = None
    """The tenant the request came from: only it may give feedback on this decision."""

    def header(self) -> str:
        return self.route.describe(self.decision, self.cascades)


class RouteRunner:
    """One configured route model, run through the deployment pool.

    Args:
        route: the decision logic.
        pool: the deployments that answer each model of the chain.
        metrics: decisions, cascades and attempts are counted there.
        pricer: prices the answers a cascade throws away (they are still paid for).
        feedback_path: JSONL file for outcomes (feedback and cascades); None keeps none.
    """

    def __init__(
        self,
        route: RouteModel,
        *,
        pool: DeploymentPool,
        metrics: GatewayMetrics,
        pricer: Pricer,
        feedback_path: Path | None = None,
    ) -> None:
        self.route = route
        self.pool = pool
        self.metrics = metrics
        self.pricer = pricer
        self.feedback_path = feedback_path
        self._recent: OrderedDict[str, tuple[str, str, str | None]] = OrderedDict()

    @property
    def name(self) -> str:
        return self.route.name

    async def run(
        self,
        body: Mapping[str, Any],
        attempt: Callable[[Deployment], Awaitable[T]],
        *,
        check_output: bool,
        affinity: str | None = None,
        tenant: str | None = None,
        start: int = 0,
    ) -> tuple[Routed[T], RouteTrace]:
        """Answer ``body`` from the chain, starting where the route decides (``affinity``: the
        prompt-prefix key each model's pool pick follows) but not before ``start``: the models
        before it already declined (a student at the head of the chain deferred), so rules, the
        router and cascades choose among the rest.

        Raises:
            AllDeploymentsFailedError: the last model of the chain failed too.
            The upstream's client errors (4xx), unchanged: another model would not help.
        """
        with span("thrifty.route", {"thrifty.route.name": self.name}) as current:
            decision = await self.route.adecide(body)
            if decision.index < start:
                chain = self.route.chain
                decision = dataclasses.replace(
                    decision,
                    index=start,
                    model=chain[start],
                    reason=f"{decision.reason}; {', '.join(chain[:start])} declined",
                )
            self.metrics.route_decisions.labels(self.name, decision.model, decision.by).inc()
            trace = RouteTrace(self.route, decision, secrets.token_hex(8), tenant=tenant)
            current.set_attributes(
                {
                    "thrifty.route.model": decision.model,
                    "thrifty.route.by": decision.by,
                    "thrifty.route.reason": decision.reason,
                    "thrifty.route.id": trace.id,
                }
            )
            try:
                routed = await self._down_chain(
                    body, attempt, trace, check_output=check_output, affinity=affinity
                )
            finally:  # cascades included, as in X-Thrifty-Route
                current.set_attribute("thrifty.route.header", trace.header())
                if trace.cascades:
                    current.set_attribute(
                        "thrifty.route.cascades", [f"{to} ({why})" for to, why in trace.cascades]
                    )
            current.set_attribute("thrifty.route.answered_by", trace.answered_by or "")
            return routed, trace

    async def _down_chain(
        self,
        body: Mapping[str, Any],
        attempt: Callable[[Deployment], Awaitable[T]],
        trace: RouteTrace,
        *,
        check_output: bool,
        affinity: str | None = None,
    ) -> Routed[T]:
        """Call the chain from the decided model on, cascading on failures and bad answers."""
        decision, chain = trace.decision, self.route.chain
        for index in range(decision.index, len(chain)):
            name, last = chain[index], index == len(chain) - 1
            try:
                routed = await self.pool.run(name, attempt, affinity=affinity)
            except AllDeploymentsFailedError as exc:
                if last:
                    raise
                self.metrics.count_attempts(exc.attempts)
                self._cascade(trace, chain[index + 1], "upstream_error")
                continue
            reason = None
            if check_output and not last:
                reason = failed_check(
                    body,
                    routed.result,  # type: ignore[arg-type]
                    self.route.cascade_on,
                    self.route.check_options,
                )
            if reason is None:
                trace.answered_by = name
                self._remember(trace, body)
                return routed
            self._discard(trace, body, routed)
            self._cascade(trace, chain[index + 1], reason)
            if index == 0:
                await self._record(prompt_text(body), False, source=f"cascade:{reason}")
        raise AssertionError("unreachable: the last model of a chain always answers or raises")

    def _cascade(self, trace: RouteTrace, to: str, reason: str) -> None:
        trace.cascades.append((to, reason))
        self.metrics.cascades.labels(self.name, reason).inc()

    def _discard(self, trace: RouteTrace, body: Mapping[str, Any], routed: Routed[Any]) -> None:
        """An answer thrown away: its attempts are counted and its cost is still paid."""
        self.metrics.count_attempts(routed.attempts)
        priced = self.pricer.price_answer(routed.deployment.model_name, body, routed.result)
        trace.wasted_usd += priced.cost_usd
        trace.wasted_tokens += priced.tokens_in + priced.tokens_out

    # --------------------------------------------------------------- feedback
    def _remember(self, trace: RouteTrace, body: Mapping[str, Any]) -> None:
        """Keep a decision for feedback, with the tenant it was made for: only that tenant may
        give a verdict on it (like a semantic hit's id)."""
        if trace.answered_by is None:
            return
        self._recent[trace.id] = (prompt_text(body), trace.answered_by, trace.tenant)
        while len(self._recent) > RECENT_DECISIONS:
            self._recent.popitem(last=False)

    async def _record(self, text: str, cheap_ok: bool, *, source: str) -> None:
        if self.feedback_path is not None:
            await asyncio.to_thread(
                append_outcome, self.feedback_path, text, cheap_ok, route=self.name, source=source
            )

    async def feedback(
        self, route_id: str, correct: bool, tenant: str | None = None
    ) -> tuple[bool, str]:
        """Turn a verdict on a served answer into an outcome; returns (recorded, why not).

        Raises:
            KeyError: no recent decision of ``tenant`` (when given) has ``route_id``.
        """
        if not self.knows(route_id, tenant):
            raise KeyError(route_id)
        text, answered_by, _ = self._recent[route_id]
        if self.feedback_path is None:
            return False, "this route keeps no outcomes (no feedback_path)"
        if answered_by != self.route.chain[0]:
            return False, f"{answered_by} answered: a verdict on it says nothing of the cheapest"
        await self._record(text, correct, source="feedback")
        return True, ""

    def knows(self, route_id: str, tenant: str | None = None) -> bool:
        """Whether ``route_id`` is a recent decision (made for ``tenant``, when given)."""
        found = self._recent.get(route_id)
        return found is not None and (tenant is None or found[2] == tenant)


async def route_feedback(
    routes: Mapping[str, RouteRunner], route_id: str, correct: bool, tenant: str | None = None
) -> dict[str, Any]:
    """``POST /v1/thrifty/feedback`` with a ``route_id``: the response body.

    Raises:
        APIError: 404 when no route of this worker remembers ``route_id`` for ``tenant`` (another
            tenant's id is answered exactly like an unknown one).
    """
    for runner in routes.values():
        if runner.knows(route_id, tenant):
            recorded, why = await runner.feedback(route_id, correct, tenant)
            return {"route_id": route_id, "recorded": recorded, **({"why": why} if why else {})}
    raise APIError(
        404,
        f"no recent route decision has the id {route_id!r}",
        param="route_id",
        code="unknown_route_id",
    )


def _resolve(path: str, source: str) -> Path:
    file = Path(path)
    config = Path(source)
    if not file.is_absolute() and config.is_file():
        return config.parent / file
    return file


def _router(settings: RouteSettings, source: str, where: str) -> LearnedRouter | None:
    spec = settings.router
    if spec is None:
        return None
    try:
        router = LearnedRouter.load(_resolve(spec.path, source))
        return router.retarget(
            strong_share=spec.target_strong_share,
            quality=spec.target_quality,
            threshold=spec.threshold,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}.router: {exc}") from exc


def build_routes(
    config: GatewayConfig,
    source: str,
    *,
    pool: DeploymentPool,
    metrics: GatewayMetrics,
    pricer: Pricer,
) -> dict[str, RouteRunner]:
    """The route models of a config, by name, run through ``pool``.

    Raises:
        ConfigError: naming the field, when a router file cannot be loaded or used.
    """
    runners: dict[str, RouteRunner] = {}
    for i, settings in enumerate(config.routes):
        where = f"routes[{i}]"
        try:
            route = RouteModel(
                settings.name,
                settings.chain,
                rules=settings.rules,
                router=_router(settings, source, where),
                default=settings.default,
                cascade_on=settings.cascade_on,
                check_options=CheckOptions(settings.cascade_regex, settings.cascade_min_logprob),
            )
        except ConfigError:
            raise
        except Exception as exc:  # the router's embedder cannot be built
            raise ConfigError(f"{where}.router: {exc}") from exc
        feedback = settings.feedback_path
        runners[settings.name] = RouteRunner(
            route,
            pool=pool,
            metrics=metrics,
            pricer=pricer,
            feedback_path=_resolve(feedback, source) if feedback else None,
        )
    return runners
