"""Per-request cache control: the ``X-Thrifty-*`` headers and the ``thrifty`` body field.

Modes (the header wins over the body field):

- ``default``: serve a stored answer, else call the upstream and store its answer.
- ``no-store``: serve a stored answer, but do not store a fresh one.
- ``refresh``: skip the lookup, call the upstream, overwrite the stored answer (``REFRESH``).
- ``no-cache``: the cache is not used at all (``BYPASS``).

A request that sets ``temperature > 0`` asks for varied answers, so it bypasses the cache unless
the caller opts in (``X-Thrifty-Cache-Temperature: true``, ``thrifty.cache_temperature``, or the
config's ``cache.cache_temperature``). A request that leaves temperature out is cached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from starlette.datastructures import Headers

from thrifty.server.errors import APIError
from thrifty.server.schemas import ThriftyOptions

CACHE_HEADER = "x-thrifty-cache"
TTL_HEADER = "x-thrifty-ttl"
NAMESPACE_HEADER = "x-thrifty-namespace"
TEMPERATURE_HEADER = "x-thrifty-cache-temperature"
MODES = ("default", "no-cache", "no-store", "refresh")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
MAX_NAMESPACE = 200

Status = Literal["HIT", "SEMANTIC_HIT", "MISS", "REFRESH", "BYPASS"]


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """What the cache may do for one request."""

    read: bool
    write: bool
    refresh: bool
    namespace: str
    ttl: float | None

    @property
    def bypass(self) -> bool:
        return not (self.read or self.write)


def _flag(value: str, header: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise APIError(400, f"header {header} must be true or false, not {value!r}", param=header)


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
    opts = options or ThriftyOptions()
    mode = headers.get(CACHE_HEADER) or opts.cache or "default"
    mode = mode.strip().lower()
    if mode not in MODES:
        raise APIError(400, f"{CACHE_HEADER} must be one of {', '.join(MODES)}, not {mode!r}",
                       param=CACHE_HEADER)
    ttl = opts.ttl
    raw_ttl = headers.get(TTL_HEADER)
    if raw_ttl is not None:
        try:
            ttl = float(raw_ttl)
        except ValueError:
            ttl = -1.0
        if not (ttl > 0 and math.isfinite(ttl)):
            raise APIError(400, f"{TTL_HEADER} must be a positive number of seconds",
                           param=TTL_HEADER)
    sub = headers.get(NAMESPACE_HEADER) or opts.namespace
    if sub is not None and not (0 < len(sub) <= MAX_NAMESPACE):
        raise APIError(400, f"{NAMESPACE_HEADER} must be 1 to {MAX_NAMESPACE} characters",
                       param=NAMESPACE_HEADER)
    namespace = f"{tenant}/{sub}" if sub else tenant
    sampled_ok = cache_temperature
    raw_opt_in = headers.get(TEMPERATURE_HEADER)
    if raw_opt_in is not None:
        sampled_ok = _flag(raw_opt_in, TEMPERATURE_HEADER)
    elif opts.cache_temperature is not None:
        sampled_ok = opts.cache_temperature
    if not enabled or mode == "no-cache" or (temperature and temperature > 0 and not sampled_ok):
        return CachePolicy(False, False, False, namespace, ttl)
    if mode == "refresh":
        return CachePolicy(False, True, True, namespace, ttl)
    return CachePolicy(True, mode != "no-store", False, namespace, ttl)
