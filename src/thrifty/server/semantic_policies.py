"""The gateway's semantic policies from its config: one for the cache, one per overridden
namespace or key tenant (``cache.semantic_policy`` / ``semantic_delta``, ``semantic_namespaces``,
``keys[].semantic_policy``).

Kept out of ``gateway.py`` so that building the gateway imports the semantic package only when
semantic caching is on.
"""

from __future__ import annotations

from typing import Any

from thrifty.cache import Cache, SemanticSettings
from thrifty.server.config import CacheSettings, GatewayConfig, SemanticPolicyName


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
    agreement = None
    if settings.semantic_agreement:
        from thrifty.semantic.agreement import NeighbourhoodAgreement

        agreement = NeighbourhoodAgreement()
    return SemanticSettings(
        embedder=settings.embedder,
        policy=policy,
        index=settings.semantic_index or "auto",
        agreement=agreement,
    )


def apply_policies(cache: Cache, config: GatewayConfig) -> None:
    """Give each namespace or key tenant that overrides the policy its own (a namespace's
    setting wins over its key's)."""
    settings = config.cache
    if not settings.semantic:
        return
    overrides: dict[str, tuple[SemanticPolicyName | None, float | None]] = {
        key.tenant: (key.semantic_policy, key.semantic_delta)
        for key in config.keys
        if key.semantic_policy is not None or key.semantic_delta is not None
    }
    for namespace, own in settings.semantic_namespaces.items():
        overrides[namespace] = (own.semantic_policy, own.semantic_delta)
    for namespace, (name, delta) in overrides.items():
        policy = make_policy(
            name or settings.semantic_policy,
            settings.semantic_threshold,
            settings.semantic_delta if delta is None else delta,
        )
        cache.set_semantic_policy(namespace, policy)
