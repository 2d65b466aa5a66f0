"""``thrifty embedder build-static``: distil the static embedding table ahead of first use.

The static embedder (``thrifty.semantic.static``) builds its table the first time it is used,
which costs about a minute of CPU; a deployment runs this once (in an image build, say) so no
request ever waits for it. Nothing is downloaded: the table comes from the installed MiniLM.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thrifty.cli._common import exit_codes

embedder_app = typer.Typer(
    help="Local embedders: build the static table distilled from the installed MiniLM.",
    no_args_is_help=True,
)

BUILD_EXAMPLE = "Example: thrifty embedder build-static (then compression: embedder='static')"


@embedder_app.command("build-static", epilog=BUILD_EXAMPLE)
def build_static(
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Table file (default: thrifty's cache folder)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Build again even when the table exists.")] = False,
) -> None:
    """Distil the static table from the local MiniLM (once; about a minute of CPU)."""
    from thrifty.semantic.minilm_files import minilm_onnx_path
    from thrifty.semantic.static import StaticEmbedder, default_table_path

    console = Console(stderr=True)
    with exit_codes():
        model = minilm_onnx_path()
        path = output or default_table_path(model)
        if force and path.is_file():
            path.unlink()
        existed = path.is_file()
        started = time.perf_counter()
        embedder = StaticEmbedder(model, table_path=path)
        verb = "already there" if existed else f"built in {time.perf_counter() - started:.0f} s"
        console.print(f"static table {verb}: {embedder.table_path} ({embedder.dim} dimensions)")


def register(app: typer.Typer) -> None:
    app.add_typer(embedder_app, name="embedder")
