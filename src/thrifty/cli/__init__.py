"""The ``thrifty`` command. Each subcommand lives in its own module with a ``register(app)``.

Exit codes: 0 success, 1 the work failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import importlib
import importlib.metadata

import typer

app = typer.Typer(
    name="thrifty",
    help="Cheaper, faster LLM and model inference: caching, coalescing, accounting.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",  # joins a paragraph's lines: help never wraps mid-sentence
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
    "embedder",
    "bench",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"thrifty {importlib.metadata.version('thrifty')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Cheaper, faster LLM and model inference: caching, coalescing, accounting."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"thrifty.cli.{_name}").register(app)


def main() -> None:
    app()
