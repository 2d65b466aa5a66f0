"""The Starlette application: ``create_app(config)``, or ``app_from_env()`` for uvicorn workers.

Starlette rather than FastAPI: the gateway validates bodies itself (pydantic, permissive) and
needs none of FastAPI's dependency injection, so every microsecond of framework is overhead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from thrifty.cache import Cache
from thrifty.limits import LimitBackend
from thrifty.server.batches import BATCH_ROUTES, close_batches, start_batches
from thrifty.server.config import (
    CONFIG_ENV,
    GatewayConfig,
    load_config,
)
from thrifty.server.errors import APIError, exception_handler, http_error_handler
from thrifty.server.gateway import Gateway
from thrifty.server.openapi import docs_routes
from thrifty.server.pricing import PRICE_MODEL_ENV, priced_locally
from thrifty.server.routes import http_routes
from thrifty.server.upstreams import Connect


def create_app(
    config: GatewayConfig | None = None,
    *,
    source: str = "<config>",
    cache: Cache | None = None,
    limits: LimitBackend | None = None,
    lone_process: bool = False,
    connect: Connect | None = None,
) -> Starlette:
    """The gateway app for ``config`` (default: :func:`~thrifty.server.config.load_config`).

    ``lone_process``: no other gateway worker shares the cache; ``connect``: builds providers
    (tests: in-process FAKE upstreams); see :class:`Gateway`.

    Raises:
        ConfigError: naming the source and field, before any connection is accepted.
    """
    if config is None:
        config = load_config()
    gateway = Gateway(
        config,
        source=source,
        cache=cache,
        limits=limits,
        lone_process=lone_process,
        connect=connect,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        start_batches(app)  # resumes batches a previous run of the gateway left unfinished
        try:
            yield
        finally:
            await close_batches(app)
            await gateway.aclose()

    app = Starlette(
        routes=[*http_routes(gateway), *BATCH_ROUTES, *docs_routes()],
        lifespan=lifespan,
        exception_handlers={
            HTTPException: http_error_handler,
            APIError: exception_handler,  # answered here, not re-raised as a server error
            ClientDisconnect: exception_handler,  # 499, not a server error (nor re-raised)
            Exception: exception_handler,  # anything else the batch API raises: same table
        },
    )
    app.state.gateway = gateway
    return app


def app_from_env() -> Starlette:
    """The app for the config named by ``$THRIFTY_CONFIG`` (uvicorn ``--factory`` target)."""
    import os

    path = os.environ.get(CONFIG_ENV) or None
    config = load_config(path)
    if price_model := os.environ.get(PRICE_MODEL_ENV):
        config = priced_locally(config, price_model)
    return create_app(config, source=path or "<defaults>")
