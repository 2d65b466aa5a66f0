"""``thrifty batch run``: an OpenAI Batch file answered under rate limits, resumable."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from thrifty.cli._common import EXIT_FAILED, exit_codes, fail
from thrifty.policy import CachePolicy

EXAMPLE = (
    "Example: thrifty batch run reviews.jsonl -o labels.jsonl --max-concurrency 16 --rpm 500 "
    "--tpm 200000 --config thrifty.yaml   (after a crash: the same command with --resume)"
)

batch_app = typer.Typer(
    name="batch",
    help="Run OpenAI Batch files (custom_id, method, url, body per line).",
    no_args_is_help=True,
)


class RateColumn(ProgressColumn):
    """Requests per second so far."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:6.1f} req/s", style="progress.data.speed")


def parse_model_map(items: list[str] | None) -> dict[str, str]:
    """``["gpt-4o-mini=local", ...]`` -> ``{"gpt-4o-mini": "local"}``."""
    from thrifty.errors import ConfigError

    mapping: dict[str, str] = {}
    for item in items or []:
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ConfigError(f"--model-map {item!r} must look like SOURCE=TARGET")
        mapping[source.strip()] = target.strip()
    return mapping


def summary_table(summary: Any, paths: Any, n_errors: int) -> Table:
    table = Table(title="thrifty batch", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rate = (summary.ok + summary.failed) / summary.wall_s if summary.wall_s else 0.0
    rows = [
        ("requests in file", f"{summary.total:,}"),
        ("succeeded", f"{summary.ok:,}"),
        ("failed", f"{summary.failed:,}"),
        ("answered from cache", f"{summary.cached:,}"),
        ("identical lines answered once", f"{summary.deduplicated:,}"),
        ("done in an earlier run", f"{summary.skipped:,}"),
        ("upstream calls", f"{summary.upstream_calls:,}"),
        ("retries", f"{summary.retries:,}"),
        ("429s seen", f"{summary.rate_limited:,}"),
        ("cut off by a crash before (may be billed twice)", f"{summary.interrupted:,}"),
        ("tokens in / out", f"{summary.tokens_in:,} / {summary.tokens_out:,}"),
        ("cost", f"${summary.cost_usd:,.6f}"),
        ("saved (cache, duplicates, batch rates)", f"${summary.saved_usd:,.6f}"),
        ("of which batch rates (flex tier)", f"${summary.discount_usd:,.6f}"),
        ("wall time", f"{summary.wall_s:,.1f} s ({rate:,.1f} req/s)"),
        ("output", str(paths.output)),
    ]
    if n_errors:
        rows.append(("errors", str(paths.errors)))
    for name, value in rows:
        table.add_row(name, value)
    return table


def local_renames(requests: Any, model_map: dict[str, str]) -> list[str]:
    """Model names of the job that, without a config, the local model answers under another
    name: relabelled ``local`` so results never claim a model that did not answer them."""
    local_names = {"local", "smollm2"}
    asked = {model_map.get(r.body["model"], r.body["model"]) for r in requests}
    return sorted(asked - local_names)


def _ledger(settings: Any, cache: Any) -> Any:
    """The ledger writer a gateway with these ``ledger:`` settings (None: the defaults) would
    use, beside its cache by default: batch lines are requests, and they get rows like the
    gateway's. None when the config disables the ledger."""
    from thrifty.ledger import open_ledger_writer

    if settings is None:
        return open_ledger_writer(None, cache_url=cache.url)
    if not settings.enabled:
        return None
    return open_ledger_writer(
        settings.url, cache_url=cache.url, retention_days=settings.retention_days
    )


def _open(
    config_path: Path | None, cache_url: str | None, holder: str, price_model: str | None = None
) -> tuple[Any, Any, CachePolicy, Any]:
    """(provider resolver, cache, cache policy, ledger writer or None) from the gateway
    config, or the embedded defaults (the policy: the gateway's own ``cache_temperature``, so
    both treat lines alike)."""
    from thrifty.accounting.prices import PriceTable
    from thrifty.batching.runner import config_providers, local_providers
    from thrifty.cache import Cache, CoalesceSettings
    from thrifty.cache.coalesce import lone_process_leases

    if config_path is None:
        leases = lone_process_leases(cache_url)  # one batch process dedupes its own lines
        coalesce = CoalesceSettings(holder=holder, shared_leases=leases)
        cache = Cache(cache_url, coalesce=coalesce)
        return local_providers(price_model), cache, CachePolicy(), _ledger(None, cache)
    from thrifty.server.config import load_config

    config = load_config(config_path)
    prices = PriceTable(config.prices)
    cache = Cache(
        cache_url or config.cache.url,
        namespace=config.cache.namespace,
        ttl=config.cache.ttl,
        prices=prices,
        coalesce=CoalesceSettings(
            holder=holder, shared_leases=lone_process_leases(cache_url or config.cache.url)
        ),
    )
    providers = (
        config_providers(config, price_model) if config.model_list else local_providers(price_model)
    )
    policy = CachePolicy(cache_temperature=config.cache.cache_temperature)
    return providers, cache, policy, _ledger(config.ledger, cache)


async def _run(args: dict[str, Any], console: Console) -> tuple[Any, int]:
    from thrifty.accounting.prices import PriceTable
    from thrifty.batching import BatchSettings, JobPaths, read_jobfile, run_job
    from thrifty.batching.engine import DEFAULT_RETRY
    from thrifty.batching.ledger_rows import line_row
    from thrifty.errors import ConfigError
    from thrifty.retry import RetryPolicy

    if args["price_model"] is not None and args["price_model"] not in PriceTable():
        raise ConfigError(f"--price-model: no price known for {args['price_model']!r}")
    requests = read_jobfile(args["input"])
    paths = JobPaths.beside(args["output"], args["errors"], args["journal"])
    if args["config"] is None:  # config errors first; then what the local model will answer
        renames = local_renames(requests, parse_model_map(args["model_map"]))
        if renames:
            console.print(
                f"no --config: lines for {', '.join(sorted(renames))} are answered by the "
                "embedded local model and labelled 'local' (give --config to reach them)"
            )
        args["model_map"] = [*(args["model_map"] or []), *(f"{m}=local" for m in renames)]
    settings = BatchSettings(
        max_concurrency=args["max_concurrency"],
        rpm=args["rpm"],
        tpm=args["tpm"],
        retry=RetryPolicy(
            num_retries=args["retries"],
            base_delay=DEFAULT_RETRY.base_delay,
            max_delay=DEFAULT_RETRY.max_delay,
            max_retry_after=DEFAULT_RETRY.max_retry_after,
        ),
        model_map=parse_model_map(args["model_map"]),
        inline_writes=True,  # this process runs only the batch
    )
    if args["resume"] and not paths.journal.exists():
        console.print(f"[yellow]no journal at {paths.journal}: starting from the beginning[/]")
    providers, cache, policy, ledger = _open(
        args["config"], args["cache"], paths.lease_holder, args["price_model"]
    )
    settings = dataclasses.replace(settings, policy=policy)
    progress = Progress(
        TextColumn("[bold]batch"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[tokens]:,} tok  ${task.fields[cost]:.4f}  ✗{task.fields[failed]}"),
        console=console,
        disable=not args["progress"],
        transient=False,
    )
    task = progress.add_task("batch", total=len(requests), tokens=0, cost=0.0, failed=0)
    totals: dict[str, Any] = {"tokens": 0, "cost": 0.0, "failed": 0}

    job = Path(args["input"]).stem

    def on_outcome(outcome: Any) -> None:
        if ledger is not None:
            row = line_row(outcome, request_id=f"{job}-{outcome.custom_id}", tenant=cache.namespace)
            if row is not None:
                ledger.record(row)
        totals["tokens"] += outcome.tokens_in + outcome.tokens_out
        totals["cost"] += outcome.cost_usd
        totals["failed"] += 0 if outcome.ok else 1
        progress.update(
            task, advance=1, tokens=totals["tokens"], cost=totals["cost"], failed=totals["failed"]
        )

    try:
        with progress:
            summary = await run_job(
                requests,
                paths,
                resolve=providers,
                cache=cache,
                settings=settings,
                resume=args["resume"],
                on_outcome=on_outcome,
            )
    finally:
        await providers.aclose()
        cache.close()
        if ledger is not None:
            ledger.close()  # writes what is queued
    return summary, summary.failed


def run(
    input: Annotated[Path, typer.Argument(help="Batch input file (JSON lines).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where results go.")],
    errors: Annotated[
        Path | None,
        typer.Option(help="Where failed lines go (default: <output stem>.errors.jsonl)."),
    ] = None,
    max_concurrency: Annotated[int, typer.Option(help="Most requests in flight.")] = 8,
    rpm: Annotated[float | None, typer.Option(help="Requests per minute (client side).")] = None,
    tpm: Annotated[float | None, typer.Option(help="Tokens per minute (client side).")] = None,
    resume: Annotated[
        bool, typer.Option(help="Skip lines a previous run of this job finished.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(envvar="THRIFTY_CONFIG", help="Gateway YAML (model_list, cache, prices)."),
    ] = None,
    model_map: Annotated[
        list[str] | None,
        typer.Option(help="Rename a model before sending: SOURCE=TARGET (repeatable)."),
    ] = None,
    cache: Annotated[
        str | None, typer.Option(help="Cache URL (default: the config's, else SQLite).")
    ] = None,
    price_model: Annotated[
        str | None,
        typer.Option(help="Price the local model's answers at this model's rates (gpt-4o-mini)."),
    ] = None,
    journal: Annotated[
        Path | None, typer.Option(help="Progress file (default: <output>.journal.db).")
    ] = None,
    retries: Annotated[int, typer.Option(help="Retries per line on 429/5xx/timeouts.")] = 8,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Answer every line of an OpenAI Batch file; results and errors in OpenAI's output format.

    Identical requests are answered once and every answer is kept in the cache.

    Progress is journaled: --resume after a crash loses nothing and pays for nothing twice.
    """
    console = Console(stderr=True)
    args = dict(locals())
    args.pop("console")
    with exit_codes():
        try:
            summary, failed = asyncio.run(_run(args, console))
        except KeyboardInterrupt:
            fail("interrupted; finished lines are journaled: run again with --resume")
    from thrifty.batching import JobPaths

    paths = JobPaths.beside(output, errors, journal)
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        Console().print(summary_table(summary, paths, failed))
    if failed:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    batch_app.command("run", epilog=EXAMPLE)(run)
    app.add_typer(batch_app, name="batch")
