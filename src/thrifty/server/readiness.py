"""Readiness: which of the gateway's backends is down, and why, without a secret.

``GET /health/readiness`` needs no key (a load balancer asks it), so every URL and error it
shows is masked. Each backend reports its own view (``health()``: its circuit breaker, its
error tally); the cache store and the limit counters are also pinged, bounded, so a backend
that died (or came back) while idle is seen before traffic finds it. The gateway keeps
answering while a backend is down (the cache misses, the limits let requests through):
readiness is what tells an operator so.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from thrifty.cache import Cache
from thrifty.limits import LimitBackend
from thrifty.redact import redact_text, redact_url
from thrifty.store.health import BackendHealth

#: Seconds a readiness ping of the cache store may take before it counts as down.
PING_TIMEOUT = 1.0


async def _ping(cache: Cache, timeout: float) -> str | None:
    """None when the cache store answers a ping in time, else why not (masked)."""
    try:
        await asyncio.wait_for(asyncio.to_thread(cache.store.ping), timeout)
    except TimeoutError:
        return f"no answer to a ping within {timeout:g}s"
    except Exception as exc:
        return redact_text(f"{type(exc).__name__}: {exc}".strip())
    return None


def _shown(health: BackendHealth, error: str | None = None) -> dict[str, Any]:
    """One backend's health as JSON (the state as its name)."""
    shown = dataclasses.asdict(health)
    shown["state"] = None if health.state is None else health.state.value
    shown["errors"] = dict(health.errors)
    if error is not None:
        shown["up"] = False
        shown["last_error"] = error
    return shown


async def backends(
    cache: Cache, limits: LimitBackend, *, timeout: float = PING_TIMEOUT
) -> dict[str, dict[str, Any]]:
    """Each backend's health by role: ``cache``, ``limits``, ``semantic_index`` (when on)."""
    error = await _ping(cache, timeout)
    store = cache.store.health()
    store = dataclasses.replace(store, backend=redact_url(cache.url) or store.backend)
    report = {"cache": _shown(store, error), "limits": _shown(await limits.check(timeout))}
    if cache.semantic is not None:
        # The index is in this process, but a candidate is served only after its entry is read
        # from the cache store: the index is as up as that store.
        index = BackendHealth(
            backend=f"in-process index ({len(cache.semantic.index)} vectors)",
            up=report["cache"]["up"],
            last_error=None if report["cache"]["up"] else "the cache store is down",
        )
        report["semantic_index"] = _shown(index)
    return report


def summary(report: dict[str, dict[str, Any]]) -> str:
    """One line: ``ok``, or which backends are down and why."""
    down = [
        f"{role} backend {part['backend']!r} is unusable: {part['last_error'] or 'down'}"
        for role, part in report.items()
        if not part["up"]
    ]
    return "; ".join(down) or "ok"
