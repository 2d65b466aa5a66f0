"""``thrifty stats``: what a cache did and saved, from its shared counters, and what every
request cost and saved, from the gateway's ledger (read as it is now: the gateway's writer
flushes its rows within a second)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from thrifty.cache import Cache, CacheStats
from thrifty.cli._common import exit_codes, fail
from thrifty.ledger import LedgerSummary, Totals, default_ledger_url, open_ledger, parse_time
from thrifty.store import DEFAULT_URL

EXAMPLE = (
    "Example: thrifty stats --cache redis://127.0.0.1:6379/0 --namespace support\n\n"
    "thrifty stats --ledger sqlite:///.thrifty/ledger.db --since 2026-12-01 --tenant team-a"
)


def stats_table(stats: CacheStats, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in (
        ("lookups", f"{stats.lookups:,}"),
        ("exact hits", f"{stats.hits:,}"),
        ("semantic hits", f"{stats.semantic_hits:,}"),
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


def ledger_table(summary: LedgerSummary, title: str) -> Table:
    """Totals, then one row per mechanism, tenant, model and day."""
    table = Table(title=title, title_justify="left")
    for column in ("group", "requests", "spent $", "baseline $", "saved $", "tokens in/out",
                   "mean ms", "wrong hits"):  # fmt: skip
        table.add_column(column, justify="left" if column == "group" else "right")

    def row(name: str, t: Totals) -> None:
        table.add_row(
            name, f"{t.requests:,}", f"{t.cost_usd:,.6f}", f"{t.baseline_cost_usd:,.6f}",
            f"{t.saved_usd:,.6f}", f"{t.tokens_in:,}/{t.tokens_out:,}",
            f"{t.latency_ms_mean:,.1f}", f"{t.wrong_hits:,}",
        )  # fmt: skip

    row("all", summary.totals)
    for dimension in ("mechanism", "tenant", "model", "day"):
        part = summary.breakdown(dimension)
        for name in sorted(part):
            row(f"{dimension}: {name}", part[name])
    return table


def read_ledger(url: str, since: str | None, until: str | None, tenant: str | None) -> Any:
    """The ledger's summary of a period, or None where no ledger was ever written."""
    if url.startswith("memory://"):
        return None
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    try:
        start, end = parse_time(since), parse_time(until)
    except ValueError as exc:
        fail(f"--since/--until: epoch seconds or an ISO date ({exc})", 2)
    ledger = open_ledger(url)
    try:
        return ledger.summary(since=start, until=end, tenant=tenant)
    finally:
        ledger.close()


def stats(
    cache: Annotated[str, typer.Option("--cache", help="Cache URL.")] = DEFAULT_URL,
    namespace: Annotated[
        str | None, typer.Option(help="Only this namespace (default: all of them).")
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(help="Ledger URL (default: ledger.db beside a SQLite cache)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Ledger rows from (epoch seconds or ISO date, UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Ledger rows before (same forms).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's ledger rows.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show a cache's hits, misses, hit rate, size and savings, and the ledger's spend and
    savings per mechanism, tenant, model and day."""
    with exit_codes():
        with Cache(cache) as store:
            result = store.stats(namespace)
        summary = read_ledger(ledger or default_ledger_url(cache), since, until, tenant)
    if as_json:
        payload = {**dataclasses.asdict(result), "hit_rate": result.hit_rate}
        payload["ledger"] = None if summary is None else summary.as_dict()
        typer.echo(json.dumps(payload, indent=2))
        return
    scope = f"namespace {namespace!r}" if namespace else "all namespaces"
    console = Console()
    console.print(stats_table(result, f"thrifty cache {cache} ({scope})"))
    if summary is not None:
        console.print(ledger_table(summary, "ledger: every request, what it cost and saved"))


def register(app: typer.Typer) -> None:
    app.command("stats", epilog=EXAMPLE)(stats)
