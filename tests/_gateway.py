"""Helpers for the gateway tests: the app served by uvicorn in a thread, a fake upstream config.

The upstream is :class:`thrifty.testing.fake_openai.FakeOpenAI`, a FAKE that answers at once
with made-up text: the tests measure the gateway, never a model.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette

from thrifty.server.app import create_app
from thrifty.server.config import GatewayConfig, parse_config


def fake_config(base_url: str, **overrides: Any) -> GatewayConfig:
    """A config serving ``gpt-4o-mini`` (and ``backup``) from the fake upstream, memory cache."""
    data: dict[str, Any] = {
        "model_list": [
            {"model_name": "gpt-4o-mini",
             "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": base_url,
                                "api_key": "sk-fake"}},
            {"model_name": "backup",
             "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": base_url,
                                "api_key": "sk-fake"}},
        ],
        "router_settings": {"num_retries": 1, "retry_base_delay": 0.0, "timeout": 10},
        "cache": {"url": "memory://"},
    }
    data.update(overrides)
    return parse_config(data, source="test.yaml")


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
def gateway(config: GatewayConfig, **kwargs: Any) -> Iterator[tuple[str, Starlette]]:
    """The app for ``config``, served; yields (base URL, app)."""
    app = create_app(config, source="test.yaml", **kwargs)
    with serving(app) as url:
        yield url, app
