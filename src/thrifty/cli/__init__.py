"""The ``thrifty`` command. Each subcommand lives in its own module with a ``register(app)``.

Exit codes: 0 success, 1 the work failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="thrifty",
    help="Cheaper, faster LLM and model inference: caching, coalescing, accounting.",
    no_args_is_help=True,
    add_completion=False,
)

# Subcommand modules under thrifty.cli, registered in this order (declared once, as data).
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "stats",
    "cache_cmd",
    "audit",
    "serve",
    "batch",
    "route",
    "distill",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"thrifty.cli.{_name}").register(app)


def main() -> None:
    app()
