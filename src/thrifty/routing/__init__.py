"""Routing: which deployment answers a request, with retries, cooldowns and fallbacks
(``deployments.py``); route models that send a request to the cheapest adequate model of a chain
(``route.py``: rules as data in ``rules.py``, a learned router in ``router.py``/``scorers.py``
calibrated by ``calibration.py`` on ``outcomes.py``, cascades on ``validation.py``'s checks)."""

from thrifty.routing.deployments import (
    STRATEGIES,
    Attempt,
    Deployment,
    DeploymentPool,
    Routed,
    parse_fallbacks,
)
from thrifty.routing.route import RouteDecision, RouteModel
from thrifty.routing.router import LearnedRouter, train_router
from thrifty.routing.rules import Condition, Rule

__all__ = [
    "STRATEGIES",
    "Attempt",
    "Condition",
    "Deployment",
    "DeploymentPool",
    "LearnedRouter",
    "RouteDecision",
    "RouteModel",
    "Routed",
    "Rule",
    "parse_fallbacks",
    "train_router",
]
