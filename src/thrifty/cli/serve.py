"""``thrifty serve``: the OpenAI-compatible gateway on uvicorn (uvloop + httptools when present)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from thrifty.cli._common import EXIT_USAGE, exit_codes, fail
from thrifty.cli._serve_start import DEFAULT_PRICE_MODEL, port_problem, print_banner

if TYPE_CHECKING:
    from thrifty.server.config import ServerSettings

EXAMPLE = (
    "Example: thrifty serve --config thrifty.yaml --port 8080 --workers 2   "
    "(then: OpenAI(base_url='http://127.0.0.1:8080/v1', api_key=...))"
)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def serve(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="THRIFTY_CONFIG",
            help="YAML config (model_list, router_settings, cache, keys...).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    price_model: Annotated[
        str | None,
        typer.Option(
            help="Price the local model's answers at this model's rates "
            f"(default without --config: {DEFAULT_PRICE_MODEL})."
        ),
    ] = None,
) -> None:
    """Serve the OpenAI-compatible gateway: cached, retried, rate-limited and accounted.

    Without --config (or THRIFTY_CONFIG) it serves the embedded local model as `local` and
    `smollm2`, with the SQLite cache in .thrifty/cache.db.
    """
    try:
        import uvicorn

        from thrifty.server.app import create_app
        from thrifty.server.config import load_config
        from thrifty.server.pricing import PRICE_MODEL_ENV, priced_locally
    except ImportError as exc:
        fail(f"the gateway needs its extra: pip install 'thrifty[server]' ({exc})", EXIT_USAGE)
    source = str(config) if config is not None else "<defaults>"
    with exit_codes():
        settings = load_config(config, env={**os.environ, "THRIFTY_CONFIG": ""})
        if price_model is None and config is None:
            price_model = DEFAULT_PRICE_MODEL
        if price_model is not None:
            settings = priced_locally(settings, price_model)
        # validates everything before listening; one worker has its cache to itself
        app = create_app(settings, source=source, lone_process=workers == 1)
    problem = port_problem(host, port)
    if problem is not None:
        fail(problem, EXIT_USAGE)
    print_banner(settings, host, port, workers, price_model)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": access_log,
        "loop": "auto",
        **connection_limits(settings.server),
    }
    if workers == 1:
        uvicorn.run(app, **options)
        return
    # Several workers: each builds its own app from the same file; metrics go through files.
    import asyncio

    asyncio.run(app.state.gateway.aclose())  # that one only validated the config
    made_dir = None
    if not os.environ.get(MULTIPROC_ENV):
        made_dir = tempfile.mkdtemp(prefix="thrifty-metrics-")
        os.environ[MULTIPROC_ENV] = made_dir
    if price_model is not None:
        os.environ[PRICE_MODEL_ENV] = price_model
    if config is not None:
        os.environ["THRIFTY_CONFIG"] = str(config.resolve())
    else:
        os.environ.pop("THRIFTY_CONFIG", None)
    try:
        uvicorn.run("thrifty.server.app:app_from_env", factory=True, workers=workers, **options)
    finally:
        if made_dir is not None:
            shutil.rmtree(made_dir, ignore_errors=True)


def connection_limits(server: ServerSettings) -> dict[str, Any]:
    """uvicorn's options for the config's connection limits: the header size cap and
    header-read timeout (:mod:`thrifty.server.http_limits`, on httptools; the protocol reads
    them from the app's config in each worker), and the most connections and requests at once
    (``limit_concurrency``: 503 past it)."""
    options: dict[str, Any] = {"limit_concurrency": server.max_connections}
    try:
        from thrifty.server.http_limits import HeaderLimitedProtocol
    except ImportError:  # no httptools: h11 caps the headers' size (it has no read timeout)
        options.update(http="h11", h11_max_incomplete_event_size=server.max_header_bytes)
        return options
    options["http"] = HeaderLimitedProtocol
    return options


def register(app: typer.Typer) -> None:
    app.command("serve", epilog=EXAMPLE)(serve)
