"""The gateway's semantic policies from its config: one for the cache, one per overridden
namespace or key tenant (``cache.semantic_policy`` / ``semantic_delta`` / ``semantic_agreement``,
``semantic_namespaces``, ``keys[].semantic_policy`` / ``semantic_agreement``).

Kept out of ``gateway.py`` so that building the gateway imports the semantic package only when
semantic caching is on.
"""

from __future__ import annotations

from typing import Any

from thrifty.cache import Cache, SemanticSettings
from thrifty.server.config import (
    CacheSettings,
    GatewayConfig,
    SemanticPolicyName,
    SemanticPolicySettings,
)


def make_policy(name: SemanticPolicyName, threshold: float | None, delta: float) -> Any:
    """A :class:`~thrifty.semantic.ThresholdPolicy`: ``fixed`` at ``threshold`` (None: the
    calibrated default) or ``verified`` with ``delta``."""
    if name == "verified":
        from thrifty.semantic.thresholds import VerifiedThreshold

        return VerifiedThreshold(delta)
    from thrifty.semantic.policy import DEFAULT_THRESHOLD, FixedThreshold

    return FixedThreshold(DEFAULT_THRESHOLD if threshold is None else threshold)


def semantic_settings(settings: CacheSettings) -> SemanticSettings | bool:
    """The cache's ``semantic=`` argument (False when semantic caching is off)."""
    if not settings.semantic:
        return False
    policy = make_policy(
        settings.semantic_policy, settings.semantic_threshold, settings.semantic_delta
    )
    return SemanticSettings(
        embedder=settings.embedder,
        policy=policy,
        index=settings.semantic_index or "auto",
        agreement=settings.semantic_agreement,
    )


def apply_policies(cache: Cache, config: GatewayConfig) -> None:
    """Give each namespace or key tenant that overrides the policy or the neighbourhood
    agreement its own (a namespace's setting wins over its key's)."""
    settings = config.cache
    if not settings.semantic:
        return
    overrides: dict[str, SemanticPolicySettings] = {
        key.tenant: SemanticPolicySettings(
            semantic_policy=key.semantic_policy,
            semantic_delta=key.semantic_delta,
            semantic_agreement=key.semantic_agreement,
        )
        for key in config.keys
        if (key.semantic_policy, key.semantic_delta, key.semantic_agreement) != (None,) * 3
    }
    overrides.update(settings.semantic_namespaces)
    for namespace, own in overrides.items():
        if own.semantic_policy is not None or own.semantic_delta is not None:
            policy = make_policy(
                own.semantic_policy or settings.semantic_policy,
                settings.semantic_threshold,
                settings.semantic_delta if own.semantic_delta is None else own.semantic_delta,
            )
            cache.set_semantic_policy(namespace, policy)
        if own.semantic_agreement is not None:
            cache.set_semantic_agreement(namespace, own.semantic_agreement)
