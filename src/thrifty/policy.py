"""The cache policy, declared once: modes, the temperature rule, TTL and namespace.

Every writer of cached answers (the gateway, ``thrifty.wrap``, LangChain's ``ThriftyCache`` and
batch jobs) starts from a :class:`CachePolicy` holding its defaults, overrides it per request
(``with_options``: a header, the ``thrifty`` body field, ``extra_body={"thrifty": …}``) and
applies the temperature rule (``for_temperature``). The result says what the cache may do for
that one request (``read``, ``write``, ``refresh``, ``bypass``). Before this module the modes
were declared three times and the wrapper and the gateway disagreed on the temperature rule.

The temperature rule: a request that leaves ``temperature`` out, or sets it to 0, is cached; one
that sets ``temperature > 0`` asks for varied answers and bypasses the cache unless the caller
opts in (``cache_temperature``). A temperature that is not a number is never cached (it is the
upstream's to reject).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from thrifty.errors import ConfigError

#: The longest namespace a caller may ask for.
MAX_NAMESPACE = 200
#: The longest TTL anything may set (ten years, in seconds). Backends store lifetimes as
#: integers or timestamps: Redis refuses an expiry past 2**63 ms and a larger one made the
#: write fail silently (answered 200, never cached), so the bound is checked where TTLs enter.
MAX_TTL = 10 * 365 * 24 * 3600.0


class CacheMode(StrEnum):
    """What a request lets the cache do (the values are the words callers send)."""

    DEFAULT = "default"
    """Serve a stored answer, else call the upstream and store its answer."""
    NO_CACHE = "no-cache"
    """Do not use the cache at all (reported as a bypass)."""
    NO_STORE = "no-store"
    """Serve a stored answer, but do not store a fresh one."""
    REFRESH = "refresh"
    """Skip the lookup, call the upstream and overwrite the stored answer."""


#: (read, write) for each mode: the one table the properties below read.
ACCESS: Mapping[CacheMode, tuple[bool, bool]] = {
    CacheMode.DEFAULT: (True, True),
    CacheMode.NO_CACHE: (False, False),
    CacheMode.NO_STORE: (True, False),
    CacheMode.REFRESH: (False, True),
}


def parse_mode(value: Any) -> CacheMode:
    """A mode from the word a caller sent (case and surrounding space ignored).

    Raises:
        ConfigError: not one of the four modes.
    """
    try:
        return CacheMode(value.strip().lower() if isinstance(value, str) else value)
    except ValueError:
        words = ", ".join(CacheMode)
        raise ConfigError(f"the cache mode must be one of {words}, not {value!r}") from None


def parse_ttl(value: Any) -> float:
    """A TTL in seconds from a number or its text.

    Raises:
        ConfigError: not a number in (0, :data:`MAX_TTL`] (ten years).
    """
    try:
        ttl = float(value) if isinstance(value, int | float | str) else math.nan
    except (ValueError, OverflowError):
        ttl = math.nan
    if isinstance(value, bool) or not (0 < ttl <= MAX_TTL):  # NaN fails every comparison
        raise ConfigError(
            f"the cache ttl must be a positive number of seconds, at most {MAX_TTL:.0f} (ten years)"
        )
    return ttl


def parse_namespace(value: Any) -> str:
    """A requested namespace: 1 to :data:`MAX_NAMESPACE` characters.

    Raises:
        ConfigError: empty, too long or not a string.
    """
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAMESPACE:
        raise ConfigError(f"the cache namespace must be 1 to {MAX_NAMESPACE} characters")
    return value


def cacheable_temperature(temperature: Any, opt_in: bool) -> bool:
    """The temperature rule: left out (None) or 0 is cached, ``> 0`` only on opt-in."""
    if temperature is None:
        return True
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        return False  # the upstream's to reject (400), never ours to cache
    return temperature == 0 or opt_in


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How the cache treats requests: a caller's defaults, or one request's resolved policy.

    Attributes:
        mode: what the cache may do (see :class:`CacheMode`).
        namespace: the namespace (tenant) of the entries; None: the cache's default.
        ttl: lifetime of stored answers in seconds; None: the cache's default.
        cache_temperature: also cache requests sampled at ``temperature > 0``.
    """

    mode: CacheMode = CacheMode.DEFAULT
    namespace: str | None = None
    ttl: float | None = None
    cache_temperature: bool = False
    read: bool = field(init=False, repr=False, compare=False)
    """A stored answer may be served."""
    write: bool = field(init=False, repr=False, compare=False)
    """A fresh answer may be stored."""
    refresh: bool = field(init=False, repr=False, compare=False)
    """The lookup is skipped and the stored answer overwritten."""
    bypass: bool = field(init=False, repr=False, compare=False)
    """The cache is not used at all."""

    def __post_init__(self) -> None:
        # Read from ACCESS once here, not per use: these are read on every hit, and an enum
        # member's hash is a Python call.
        read, write = ACCESS[self.mode]
        object.__setattr__(self, "read", read)
        object.__setattr__(self, "write", write)
        object.__setattr__(self, "refresh", self.mode is CacheMode.REFRESH)
        object.__setattr__(self, "bypass", not (read or write))

    def with_options(self, options: Mapping[str, Any] | None) -> CachePolicy:
        """This policy overridden by one request's options (keys ``cache``, ``ttl``,
        ``namespace``, ``cache_temperature``; a missing or None value keeps the default).

        Raises:
            ConfigError: an unknown option or a bad value.
        """
        if not options:
            return self
        unknown = set(options) - OPTION_NAMES
        if unknown:
            raise ConfigError(f"unknown cache options: {', '.join(sorted(unknown))}")
        changes: dict[str, Any] = {}
        if options.get("cache") is not None:
            changes["mode"] = parse_mode(options["cache"])
        if options.get("ttl") is not None:
            changes["ttl"] = parse_ttl(options["ttl"])
        if options.get("namespace") is not None:
            changes["namespace"] = parse_namespace(options["namespace"])
        if options.get("cache_temperature") is not None:
            changes["cache_temperature"] = bool(options["cache_temperature"])
        return dataclasses.replace(self, **changes) if changes else self

    def for_temperature(self, temperature: Any) -> CachePolicy:
        """This policy for a request sampled at ``temperature`` (None: left out): a bypass
        when the temperature rule excludes it."""
        if self.mode is CacheMode.NO_CACHE or cacheable_temperature(
            temperature, self.cache_temperature
        ):
            return self
        return dataclasses.replace(self, mode=CacheMode.NO_CACHE)


#: The per-request options :meth:`CachePolicy.with_options` takes.
OPTION_NAMES = frozenset({"cache", "ttl", "namespace", "cache_temperature"})

__all__ = [
    "ACCESS",
    "MAX_NAMESPACE",
    "MAX_TTL",
    "OPTION_NAMES",
    "CacheMode",
    "CachePolicy",
    "cacheable_temperature",
    "parse_mode",
    "parse_namespace",
    "parse_ttl",
]
