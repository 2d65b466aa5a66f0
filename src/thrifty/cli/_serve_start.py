"""What ``thrifty serve`` checks and says before it listens: the port is free, and a banner.

Kept out of ``serve.py`` so the command reads as "load, check, announce, run". The port check
binds the address the way uvicorn will (``SO_REUSEADDR``) and lets go at once: a port in use is a
usage error (exit 2, the documented code) with a hint, not uvicorn's bare exit 3.
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING

from rich.console import Console

from thrifty.redact import redact_url

if TYPE_CHECKING:
    from thrifty.server.config import GatewayConfig

CATCH_ALL = "*"


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, or None when it can (port 0: any free one)."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use; choose another with --port"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def banner_lines(
    config: GatewayConfig, host: str, port: int, workers: int, price_model: str | None = None
) -> list[str]:
    """What a person starting the gateway wants to know: where, which models, where the cache
    and the metrics are (URLs with their passwords masked)."""
    base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    names = [n for n in config.model_names() if n != CATCH_ALL]
    models = ", ".join(names) or "none"
    catch_all = [e.litellm_params.model for e in config.model_list if e.model_name == CATCH_ALL]
    if catch_all:
        models += f" (any other name: {catch_all[0]}, the catch-all entry '*')"
    if config.routes:
        models += "; routes: " + ", ".join(r.name for r in config.routes)
    cache = config.cache
    kind = "exact + semantic" if cache.semantic else "exact"
    cache_line = f"{redact_url(cache.url)} ({kind})" if cache.enabled else "off"
    prices = f"local answers priced at {price_model}'s rates" if price_model else "config's"
    return [
        f"thrifty gateway on {base}/v1 ({workers} worker{'s' if workers != 1 else ''})",
        f"  models:  {models}",
        f"  cache:   {cache_line}",
        f"  prices:  {prices} (savings in /metrics and X-Thrifty-* headers)",
        f"  metrics: {base}/metrics   health: {base}/health/readiness",
        f"  try:     curl {base}/v1/models",
    ]


def print_banner(
    config: GatewayConfig, host: str, port: int, workers: int, price_model: str | None = None
) -> None:
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in banner_lines(config, host, port, workers, price_model):
        console.print(line, markup=False)


#: What the default setup (no config) prices the local model's answers at, so its savings read
#: in dollars a team would have paid (the demo does the same); ``--price-model`` changes it.
DEFAULT_PRICE_MODEL = "gpt-4o-mini"
