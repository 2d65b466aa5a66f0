"""A route model (``thrifty/auto``): a chain of models, cheapest first, and how to pick one.

:meth:`RouteModel.decide` chooses where a request starts: the first matching rule, else the
learned router (``p >= threshold``: the cheapest model, else the next one), else the default
(the cheapest). The gateway then calls that model and, when its answer fails a check of
``validation.py`` or it keeps failing, moves down the chain (a cascade).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thrifty.errors import ConfigError
from thrifty.routing.features import RequestFeatures, features_of
from thrifty.routing.router import LearnedRouter
from thrifty.routing.rules import Rule, first_match
from thrifty.routing.validation import (
    DEFAULT_CHECKS,
    NO_OPTIONS,
    CheckOptions,
    check_options_for,
)

log = logging.getLogger("thrifty.routing")


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where a request starts in its route's chain, and why.

    Attributes:
        index: position in the chain.
        model: ``chain[index]``.
        by: ``rule``, ``router`` or ``default`` (a metric label).
        reason: a short account for ``X-Thrifty-Route`` (``router p=0.82>=0.61``).
        p: the router's probability that the cheapest model answers well, when it was asked.
        threshold: the router's bar: cheapest when ``p >= threshold`` (None without a router).
            ``p`` and ``threshold`` ride on the request context (``ctx.routing.decision``) for
            the ledger; ``reason`` shows both in ``X-Thrifty-Route``.
    """

    index: int
    model: str
    by: str
    reason: str
    p: float | None = None
    threshold: float | None = None


def router_embedder(router: LearnedRouter) -> Any:
    """The embedder a router was trained with (the hashing one at the router's width)."""
    from thrifty.semantic.embedder import make_embedder

    if router.embedder.startswith("hashing"):
        return make_embedder("hashing", dim=router.dim)
    return make_embedder(router.embedder)


class RouteModel:
    """A public model name answered by the cheapest adequate model of ``chain``.

    Args:
        name: the name clients ask for (``thrifty/auto``).
        chain: model names, cheapest first (at least two).
        rules: tried in order before the router; each ``to`` must be in ``chain``.
        router: a learned router (None: rules, then ``default``).
        embedder: embeds prompts for the router (default: the one it was trained with).
        default: where requests go that no rule and no router decides (default: cheapest).
        cascade_on: the output checks (``validation.CHECKS``) that send a request onwards.
        check_options: the parameters of the checks that take one (``regex``, ``low_logprob``).

    Raises:
        ConfigError: a short chain, a rule or default outside the chain, an unknown check.
    """

    def __init__(
        self,
        name: str,
        chain: Sequence[str],
        *,
        rules: Sequence[Rule] = (),
        router: LearnedRouter | None = None,
        embedder: Any = None,
        default: str | None = None,
        cascade_on: Sequence[str] = DEFAULT_CHECKS,
        check_options: CheckOptions = NO_OPTIONS,
    ) -> None:
        if len(chain) < 2 or len(set(chain)) != len(chain):
            raise ConfigError(f"route {name!r}: chain needs two or more distinct models")
        for i, rule in enumerate(rules):
            if rule.to not in chain:
                raise ConfigError(
                    f"route {name!r}: rules[{i}].to {rule.to!r} is not in its chain {list(chain)}"
                )
        if default is not None and default not in chain:
            raise ConfigError(f"route {name!r}: default {default!r} is not in its chain")
        try:
            self.check_options = check_options_for(cascade_on, check_options)
        except ConfigError as exc:
            raise ConfigError(f"route {name!r}: {exc}") from exc
        self.name = name
        self.chain = list(chain)
        self.rules = list(rules)
        self.router = router
        self.embedder = (
            embedder if embedder is not None or router is None else (router_embedder(router))
        )
        self.default = default or self.chain[0]
        self.cascade_on = tuple(cascade_on)

    def _at(
        self,
        model: str,
        by: str,
        reason: str,
        p: float | None = None,
        threshold: float | None = None,
    ) -> RouteDecision:
        return RouteDecision(self.chain.index(model), model, by, reason, p, threshold)

    def decide(
        self, body: Mapping[str, Any], features: RequestFeatures | None = None
    ) -> RouteDecision:
        """Where ``body`` starts. A router that fails sends the request to the stronger model
        (quality first) and logs why."""
        features = features or features_of(body)
        match = first_match(self.rules, features)
        if match is not None:
            return self._at(match.to, "rule", match.reason)
        if self.router is not None:
            try:
                vector = self.embedder.embed([features.text])
                p = float(self.router.probability(vector, [features.text])[0])
            except Exception as exc:  # fail-open: a broken router must not fail requests
                log.warning(
                    "route %s: the router failed (%s); using %s", self.name, exc, self.chain[1]
                )
                return self._at(self.chain[1], "default", "router error")
            threshold = self.router.threshold
            if p >= threshold:
                reason = f"router p={p:.2f}>={threshold:.2f}"
                return self._at(self.chain[0], "router", reason, p, threshold)
            reason = f"router p={p:.2f}<{threshold:.2f}"
            return self._at(self.chain[1], "router", reason, p, threshold)
        return self._at(self.default, "default", "default")

    async def adecide(self, body: Mapping[str, Any]) -> RouteDecision:
        """:meth:`decide` off the event loop when the router has to embed the prompt."""
        features = features_of(body)
        if self.router is None or first_match(self.rules, features) is not None:
            return self.decide(body, features)
        return await asyncio.to_thread(self.decide, body, features)

    def describe(self, decision: RouteDecision, cascades: Sequence[tuple[str, str]] = ()) -> str:
        """The one-line ``X-Thrifty-Route``: ``thrifty/auto -> a (why) -> b (cascade: empty)``."""
        line = f"{self.name} -> {decision.model} ({decision.reason})"
        for model, reason in cascades:
            line += f" -> {model} (cascade: {reason})"
        return line
