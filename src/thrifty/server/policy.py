"""Per-request cache control: the ``X-Thrifty-*`` headers and the ``thrifty`` body field, read
into a :class:`thrifty.policy.CachePolicy` (the one policy the wrapper, LangChain and batch jobs
use too; the modes and the temperature rule are declared there).

A header wins over the body field. The config's defaults (``cache.enabled``,
``cache.cache_temperature``) are the policy a request starts from; a requested namespace lives
inside the caller's tenant (``tenant/ns``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

from starlette.datastructures import Headers

from thrifty.errors import ConfigError
from thrifty.policy import CacheMode, CachePolicy, parse_namespace
from thrifty.server.errors import APIError
from thrifty.server.schemas import CONTEXT_OPTIONS, ThriftyOptions

CACHE_HEADER = "x-thrifty-cache"
TTL_HEADER = "x-thrifty-ttl"
NAMESPACE_HEADER = "x-thrifty-namespace"
TEMPERATURE_HEADER = "x-thrifty-cache-temperature"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
#: The header that overrides each option of :meth:`CachePolicy.with_options`.
OPTION_HEADERS: Mapping[str, str] = {
    "cache": CACHE_HEADER,
    "ttl": TTL_HEADER,
    "cache_temperature": TEMPERATURE_HEADER,
}

Status = Literal["HIT", "SEMANTIC_HIT", "MISS", "REFRESH", "BYPASS"]


def _flag(value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"must be true or false, not {value!r}")


def _with_headers(policy: CachePolicy, headers: Headers) -> CachePolicy:
    """``policy`` overridden by the options the headers set (each checked on its own, so a
    bad value is reported under its header)."""
    for name, header in OPTION_HEADERS.items():
        raw = headers.get(header)
        if raw is None:
            continue
        try:
            value = _flag(raw) if name == "cache_temperature" else raw
            policy = policy.with_options({name: value})
        except ConfigError as exc:
            raise APIError(400, f"header {header}: {exc}", param=header) from None
    return policy


def cache_policy(
    headers: Headers,
    options: ThriftyOptions | None,
    *,
    tenant: str,
    temperature: float | None,
    enabled: bool,
    cache_temperature: bool,
) -> CachePolicy:
    """The policy of one request.

    Args:
        tenant: the caller's tenant; a requested namespace lives inside it (``tenant/ns``).
        temperature: the request's temperature, None when left out.
        enabled: False when the config turns the cache off.
        cache_temperature: the config's opt-in for ``temperature > 0``.

    Raises:
        APIError: 400 for an unknown mode, a non-positive TTL or a bad namespace.
    """
    body = (
        options.model_dump(exclude_none=True, exclude=set(CONTEXT_OPTIONS))
        if options is not None
        else {}
    )
    requested = body.pop("namespace", None)  # inside the tenant: not an override
    sub = headers.get(NAMESPACE_HEADER) or requested
    if sub is not None:
        try:
            parse_namespace(sub)
        except ConfigError as exc:
            raise APIError(400, f"{NAMESPACE_HEADER}: {exc}", param=NAMESPACE_HEADER) from None
    namespace = f"{tenant}/{sub}" if sub else tenant
    # The body field was validated by its schema; the headers win over it.
    policy = CachePolicy(namespace=namespace, cache_temperature=cache_temperature)
    policy = _with_headers(policy.with_options(body), headers)
    if not enabled:  # the config's off switch wins over every request
        return dataclasses.replace(policy, mode=CacheMode.NO_CACHE)
    return policy.for_temperature(temperature)


__all__ = ["CachePolicy", "Status", "cache_policy"]
