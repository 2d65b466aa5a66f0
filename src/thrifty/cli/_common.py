"""What every subcommand shares: turning errors into exit codes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

import typer
from rich.console import Console

from thrifty.errors import ConfigError, ThriftyError

#: Exit codes (the same for every subcommand).
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``message`` to stderr and leave with ``code``."""
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@contextlib.contextmanager
def exit_codes() -> Iterator[None]:
    """Bad configuration or arguments exit 2; any other thrifty failure exits 1."""
    try:
        yield
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except ThriftyError as exc:
        fail(str(exc), EXIT_FAILED)
