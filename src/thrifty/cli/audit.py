"""``thrifty audit``: read the audit log that lives with a cache (newest first)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from thrifty.audit import AuditRecord, open_audit
from thrifty.audit.base import parse_time
from thrifty.cli._admin import CacheURL, ConfigFile, cache_settings
from thrifty.cli._common import EXIT_USAGE, exit_codes, fail
from thrifty.redact import redact_url

EXAMPLE = "Example: thrifty audit --config gw.yaml --action cache. --since 2026-01-01 --limit 20"


def audit_table(records: list[AuditRecord], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("time (UTC)", "actor", "action", "target", "result", "detail"):
        table.add_column(column, overflow="fold")
    for record in records:
        row = record.to_dict()
        table.add_row(
            row["time"].replace("+00:00", ""),
            record.actor,
            row["action"],
            json.dumps(record.target, sort_keys=True),
            row["result"],
            json.dumps(record.detail, sort_keys=True),
        )
    return table


def audit(
    cache: CacheURL = None,
    config: ConfigFile = None,
    since: Annotated[
        str | None, typer.Option(help="Only records at or after this (epoch seconds or ISO 8601).")
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, or a prefix ending in '.' (cache.).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many records.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines, not a table.")] = False,
) -> None:
    """Show who did what to the cache and when: purges, invalidations, clears, key rotations,
    feedback and gateway config loads."""
    try:
        start = parse_time(since) if since else None
    except ValueError as exc:
        fail(f"--since: {exc}", EXIT_USAGE)
    with exit_codes():
        url, _ = cache_settings(cache, config)
        log = open_audit(url)
        try:
            records = log.read(since=start, action=action, limit=limit)
        finally:
            log.close()
    if as_json:
        for record in records:
            typer.echo(json.dumps(record.to_dict(), sort_keys=True))
        return
    Console().print(
        audit_table(
            records, f"audit log of {redact_url(url)}, newest first (records: {len(records)})"
        )
    )


def register(app: typer.Typer) -> None:
    app.command("audit", epilog=EXAMPLE)(audit)
