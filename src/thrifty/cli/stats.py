"""``thrifty stats``: what a cache did and saved, from its shared counters."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from thrifty.cache import Cache, CacheStats
from thrifty.cli._common import exit_codes
from thrifty.store import DEFAULT_URL

EXAMPLE = "Example: thrifty stats --cache redis://127.0.0.1:6379/0 --namespace support"


def stats_table(stats: CacheStats, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in (
        ("lookups", f"{stats.lookups:,}"),
        ("exact hits", f"{stats.hits:,}"),
        ("semantic hits", f"{stats.semantic_hits:,}"),
        ("semantic hits reported wrong", f"{stats.semantic_wrong_hits:,}"),
        ("misses", f"{stats.misses:,}"),
        ("hit rate", f"{stats.hit_rate:.1%}"),
        ("entries", f"{stats.entries:,}"),
        ("stored bytes", f"{stats.bytes:,}"),
        ("tokens saved", f"{stats.tokens_saved:,}"),
        ("dollars saved", f"${stats.usd_saved:,.6f}"),
        ("model time saved", f"{stats.latency_saved_ms / 1000:,.1f} s"),
        ("backend errors (this process)", f"{stats.errors:,}"),
    ):
        table.add_row(name, value)
    return table


def stats(
    cache: Annotated[str, typer.Option("--cache", help="Cache URL.")] = DEFAULT_URL,
    namespace: Annotated[
        str | None, typer.Option(help="Only this namespace (default: all of them).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show a cache's hits, misses, hit rate, size and what it saved (tokens, dollars, time)."""
    with exit_codes(), Cache(cache) as store:
        result = store.stats(namespace)
    if as_json:
        payload = {**dataclasses.asdict(result), "hit_rate": result.hit_rate}
        typer.echo(json.dumps(payload, indent=2))
        return
    scope = f"namespace {namespace!r}" if namespace else "all namespaces"
    Console().print(stats_table(result, f"thrifty cache {cache} ({scope})"))


def register(app: typer.Typer) -> None:
    app.command("stats", epilog=EXAMPLE)(stats)
