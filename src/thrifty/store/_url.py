"""Query parameters of a store URL that thrifty reads itself (the driver never sees them)."""

from __future__ import annotations

import math
from collections.abc import Collection
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from thrifty.errors import ConfigError


def pop_query(url: str, names: Collection[str]) -> tuple[str, dict[str, str]]:
    """(``url`` without the query parameters in ``names``, {name: its last value})."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in names}
    if not ours:
        return url, ours
    rest = [(k, v) for k, v in query if k not in names]
    return urlunsplit(parts._replace(query=urlencode(rest))), ours


def seconds(name: str, given: float | None, query: dict[str, str], default: float) -> float:
    """A timeout: the keyword argument if given, else the URL's ``?name=``, else ``default``.

    Raises:
        ConfigError: the value is not a positive, finite number of seconds.
    """
    raw: float | str = given if given is not None else query.get(name, default)
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be seconds, got {raw!r}") from exc
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be positive, finite seconds, got {raw!r}")
    return value


#: ``?broadcast=off`` on a shared store's URL: no messages to and from other replicas
#: (``store/bus.py``); on by default.
BROADCAST = "broadcast"


def switch(name: str, query: dict[str, str], default: bool = True) -> bool:
    """An on/off URL option (``on``/``off``, ``true``/``false``, ``1``/``0``, ``yes``/``no``).

    Raises:
        ConfigError: another value.
    """
    raw = query.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in ("on", "true", "1", "yes"):
        return True
    if word in ("off", "false", "0", "no"):
        return False
    raise ConfigError(f"{name} must be on or off, got {raw!r}")
