"""Routing: which deployment answers a request, with retries, cooldowns and fallbacks."""

from thrifty.routing.deployments import (
    STRATEGIES,
    Attempt,
    Deployment,
    DeploymentPool,
    Routed,
    parse_fallbacks,
)

__all__ = ["STRATEGIES", "Attempt", "Deployment", "DeploymentPool", "Routed", "parse_fallbacks"]
