"""From ``model_list`` entries to providers, and from providers to a :class:`DeploymentPool`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from thrifty.providers.base import Provider
from thrifty.retry import RetryPolicy
from thrifty.routing import Deployment, DeploymentPool
from thrifty.server.config import (
    DEFAULT_OPENAI_BASE,
    DeploymentParams,
    GatewayConfig,
    RouterSettings,
    provider_of,
)

OPENAI_KEY_ENV = "OPENAI_API_KEY"
ANTHROPIC_KEY_ENV = "ANTHROPIC_API_KEY"


def _http(params: DeploymentParams, timeout: float) -> Provider:
    """An HTTP upstream: OpenAI-compatible, or Anthropic's Messages API."""
    from thrifty.providers.anthropic import DEFAULT_ANTHROPIC_BASE, AnthropicProvider
    from thrifty.providers.openai_compat import OpenAICompatProvider

    provider_class, default_base, key_env = {
        "openai": (OpenAICompatProvider, DEFAULT_OPENAI_BASE, OPENAI_KEY_ENV),
        "anthropic": (AnthropicProvider, DEFAULT_ANTHROPIC_BASE, ANTHROPIC_KEY_ENV),
    }[params.kind]
    api_key = params.api_key
    if api_key is None and params.api_base is None:  # the provider itself: its usual variable
        api_key = os.environ.get(key_env)
    return provider_class(
        params.api_base or default_base,
        api_key,
        provider_of(params.model)[1],
        timeout=params.timeout or timeout,
        name=params.model,
    )


def _local(params: DeploymentParams, timeout: float) -> Provider:
    """The local chat model, or the local embedder for ``thrifty/local-embed``."""
    from thrifty.providers.local_embed import EMBED_MODEL_NAMES, LocalEmbeddingProvider

    if provider_of(params.model)[1].lower() in EMBED_MODEL_NAMES:
        return LocalEmbeddingProvider()
    from thrifty.providers.local import local_provider

    return local_provider(params.model_path)


def _student(params: DeploymentParams, timeout: float) -> Provider:
    from thrifty.providers.student import StudentProvider

    return StudentProvider(provider_of(params.model)[1], name=params.model)


#: Provider kind -> builder (declared once).
BUILDERS: Mapping[str, Callable[[DeploymentParams, float], Provider]] = {
    "openai": _http,
    "anthropic": _http,
    "local": _local,
    "student": _student,
}


def _identity(params: DeploymentParams) -> tuple[Any, ...]:
    """Deployments with the same identity share one provider (one pool, one loaded model)."""
    if params.kind == "local":
        return ("local", provider_of(params.model)[1].lower(), params.model_path)
    return (params.kind, params.model, params.api_base, params.api_key, params.timeout)


def _stream_timeout(params: DeploymentParams, router: RouterSettings) -> float | None:
    """A deployment's limit between two stream chunks: its own, else the router's for HTTP
    upstreams. A local model gets none by default: its requests queue for one model, so a
    silence before its first chunk is a wait in line, not a stalled upstream."""
    if params.stream_timeout is not None:
        return params.stream_timeout
    return None if params.kind == "local" else router.stream_timeout


#: Builds the provider of a deployment, or None to leave it to :data:`BUILDERS` (a test's
#: in-process FAKE upstream, e.g. :class:`thrifty.testing.inprocess.InProcessOpenAI`).
Connect = Callable[[DeploymentParams, float], Provider | None]


def build_pool(
    config: GatewayConfig, connect: Connect | None = None
) -> tuple[DeploymentPool, list[Provider]]:
    """The deployment pool of a config, and the distinct providers (to close at shutdown).

    Raises:
        ConfigError: from the pool (unknown strategy, duplicate ids, bad fallbacks).
    """
    router = config.router_settings
    providers: dict[tuple[Any, ...], Provider] = {}
    deployments: list[Deployment] = []
    for entry in config.model_list:
        params = entry.litellm_params
        identity = _identity(params)
        if identity not in providers:
            provider = connect(params, router.timeout) if connect is not None else None
            if provider is None:
                provider = BUILDERS[params.kind](params, router.timeout)
            providers[identity] = provider
        info = entry.model_info or {}
        deployments.append(
            Deployment(
                model_name=entry.model_name,
                target=providers[identity],
                id=str(info.get("id") or ""),
                rpm=params.rpm,
                tpm=params.tpm,
                stream_timeout=_stream_timeout(params, router),
            )
        )
    extra = router.model_extra or {}
    pool = DeploymentPool(
        deployments,
        fallbacks=router.fallbacks,
        policy=RetryPolicy(num_retries=router.num_retries, base_delay=router.retry_base_delay),
        strategy=str(extra.get("routing_strategy", "simple-shuffle")),
        allowed_fails=max(router.allowed_fails, 1),
        cooldown_time=router.cooldown_time,
        # HTTP providers enforce the timeout themselves (connect, read, between chunks); the
        # pool's own timer costs a task per attempt, so it is kept only for in-process models.
        timeout=router.timeout
        if any(e.litellm_params.kind == "local" for e in config.model_list)
        else None,
    )
    return pool, list(providers.values())


def serves(provider: Any, operation: str) -> bool:
    """Whether a provider implements an optional operation (``completion``, ``embeddings``)."""
    return getattr(type(provider), operation, None) is not getattr(Provider, operation)
