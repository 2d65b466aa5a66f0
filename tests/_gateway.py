"""Helpers for the gateway tests: the app in-process (default) or served by uvicorn, a config.

In-process is the default: :func:`gateway` runs the app's lifespan on an event loop in a
background thread and serves it through ``httpx.ASGITransport`` under a made-up host
(``http://gw-1.test``); its upstream is the FAKE :class:`thrifty.testing.fake_openai.FakeOpenAI`
served in-process too (:class:`thrifty.testing.inprocess.InProcessOpenAI`). Tests send their
requests with :data:`web` (an ``httpx.Client`` that routes those hosts in-process and any other
URL over the network) and SDK clients with :func:`sdk`, so a test reads the same
whichever way the gateway runs. :func:`served_over_sockets` keeps the real server for what only
sockets show: uvicorn startup, workers, streams over the wire, disconnects.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio.from_thread
import httpx
import httpx2
import openai
import uvicorn
from starlette.applications import Starlette

from thrifty.server.app import create_app
from thrifty.server.config import GatewayConfig, parse_config
from thrifty.testing.inprocess import InProcessOpenAI


def fake_config(base_url: str, **overrides: Any) -> GatewayConfig:
    """A config serving ``gpt-4o-mini`` (and ``backup``) from the fake upstream, memory cache."""
    data: dict[str, Any] = {
        "model_list": [
            {
                "model_name": "gpt-4o-mini",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": base_url,
                    "api_key": "sk-fake",
                },
            },
            {
                "model_name": "backup",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": base_url,
                    "api_key": "sk-fake",
                },
            },
        ],
        "router_settings": {"num_retries": 1, "retry_base_delay": 0.0, "timeout": 10},
        "cache": {"url": "memory://"},
    }
    data.update(overrides)
    return parse_config(data, source="test.yaml")


# ------------------------------------------------------------------------ in-process
class _InProcess(httpx.BaseTransport):
    """Requests to an in-process gateway's host go through ``httpx.ASGITransport`` on that
    gateway's event loop; any other URL goes over the network as usual."""

    def __init__(self) -> None:
        self.apps: dict[str, tuple[Starlette, anyio.from_thread.BlockingPortal]] = {}
        self.network = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        served = self.apps.get(request.url.host)
        if served is None:
            return self.network.handle_request(request)
        app, portal = served
        transport = httpx.ASGITransport(app=app)
        body = request.read()

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            inner = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await transport.handle_async_request(inner)
            return response.status_code, response.headers.raw, await response.aread()

        status, headers, content = portal.call(call)
        return httpx.Response(status, headers=headers, content=content, request=request)


_router = _InProcess()
_hosts = itertools.count(1)


def web_client() -> httpx.Client:
    """A client that sends to in-process gateways by their host, and anywhere else by network
    (one per SDK client: closing an SDK client closes its HTTP client)."""
    return httpx.Client(transport=_router, timeout=10)


#: The client of the gateway tests' own requests.
web = web_client()


class _SDKBridge(httpx2.BaseTransport):
    """The OpenAI SDK sends with httpx2: its requests go through the same router (buffered)."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = _router.handle_request(
            httpx.Request(
                request.method,
                str(request.url),
                headers=request.headers.raw,
                content=request.read(),
            )
        )
        return httpx2.Response(
            response.status_code,
            headers=response.headers.raw,
            content=response.read(),
            request=request,
        )


def sdk(url: str, key: str = "sk-test") -> openai.OpenAI:
    """The official OpenAI SDK pointed at a gateway, in-process or not."""
    return openai.OpenAI(
        base_url=f"{url}/v1",
        api_key=key,
        max_retries=0,
        http_client=httpx2.Client(transport=_SDKBridge(), timeout=10),
    )


@contextmanager
def in_process(app: Starlette) -> Iterator[str]:
    """Run ``app``'s lifespan on a background event loop; yields the base URL that
    :data:`web` sends to it through ``httpx.ASGITransport`` (no socket)."""
    host = f"gw-{next(_hosts)}.test"
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        _router.apps[host] = (app, portal)
        try:
            yield f"http://{host}"
        finally:
            del _router.apps[host]


def stored(url: str) -> None:
    """Wait until the in-process gateway at ``url`` has stored the answers it gave (they are
    written after the response): an identical request is then a plain hit, not one coalesced
    onto the write still in flight. In-process requests follow each other faster than over
    sockets, so a test that counts hits says so."""
    app, portal = _router.apps[httpx.URL(url).host]
    portal.call(app.state.gateway.tasks.drain)  # a refresh's or a stream's write
    portal.call(app.state.gateway.cache.adrain)  # write-behind


@contextmanager
def gateway(config: GatewayConfig, **kwargs: Any) -> Iterator[tuple[str, Starlette]]:
    """The app for ``config`` in-process, its FAKE upstreams in-process too; yields
    (base URL, app)."""
    kwargs.setdefault("connect", InProcessOpenAI.connector())
    app = create_app(config, source="test.yaml", **kwargs)
    with in_process(app) as url:
        yield url, app


# ------------------------------------------------------------------------ over sockets
@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Run ``app`` on a free loopback port in a background thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def served_over_sockets(config: GatewayConfig, **kwargs: Any) -> Iterator[tuple[str, Starlette]]:
    """The app for ``config`` served by uvicorn on loopback, its upstreams over HTTP;
    yields (base URL, app)."""
    app = create_app(config, source="test.yaml", **kwargs)
    with serving(app) as url:
        yield url, app
