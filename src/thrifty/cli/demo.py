"""``thrifty demo``: replay support questions through the cache in front of the local model."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from thrifty.cache import Cache
from thrifty.cli._common import EXIT_USAGE, exit_codes, fail
from thrifty.demo import workload as workloads
from thrifty.demo.replay import DEMO_NAMESPACE, DemoReport, Outcome, percentile, replay
from thrifty.providers.local import local_provider

DEFAULT_CACHE = "sqlite:///.thrifty/demo.db"
WORKLOADS = ("auto", "shipped", "support")
EXAMPLE = (
    "Example: thrifty demo --limit 40 --max-tokens 32 · "
    "thrifty demo --workload support --data ../shared/data/support/bitext_customer_support.csv.gz"
)


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.1f} ms" if value < 1000 else f"{value / 1000:,.2f} s"


def _p50_p95(values: list[float]) -> str:
    return f"{_ms(percentile(values, 50))} / {_ms(percentile(values, 95))}"


def _usd(value: float) -> str:
    return f"${value:,.6f}" if value < 1 else f"${value:,.2f}"


def render(console: Console, report: DemoReport, cache_url: str, max_tokens: int) -> None:
    """The report table: hits, latency, tokens, dollars and time saved."""
    w = report.workload
    hits, misses = report.latencies("hit"), report.latencies("miss")
    table = Table(title="thrifty demo: what the cache did", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("requests", f"{len(report.outcomes):,}"),
        ("cache hits", f"{report.hits:,} ({report.hit_rate:.1%})"),
        ("misses (answered by the model)", f"{len(misses):,}"),
        ("paraphrases missed (exact cache)", f"{w.count('paraphrase'):,}"),
        ("latency of a hit, p50 / p95", _p50_p95(hits)),
        ("latency of a miss, p50 / p95", _p50_p95(misses)),
        ("tokens saved", f"{report.saved.tokens_saved:,}"),
        (f"cost on {report.price_model} without cache", _usd(report.cost_without_cache_usd)),
        (f"cost on {report.price_model} with cache", _usd(report.paid_usd)),
        (
            "saved",
            _usd(report.saved.usd_saved)
            + (
                f" ({report.saved.usd_saved / report.cost_without_cache_usd:.1%})"
                if report.cost_without_cache_usd
                else ""
            ),
        ),
        ("wall time with cache", f"{report.wall_s:,.1f} s"),
        ("wall time without cache (estimated)", f"{report.wall_without_cache_s:,.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    console.print(
        f"[dim]Tokens are the local model's counts (max_tokens {max_tokens}), priced at "
        f"{report.price_model}'s rates; 'without cache' replaces each hit by the time its original "
        f"call took. Cache: {cache_url} (namespace 'demo').[/]"
    )
    sample = next((o for o in report.outcomes if o.status == "hit"), None)
    if sample is not None:
        console.print(
            f"[bold]Served from cache[/] ({_ms(sample.latency_ms)}): "
            f"[italic]{sample.request.question}[/] → {sample.answer.strip()!r}"
        )
    console.print(
        "[dim]Next: the whole stream (thrifty demo --limit 166), the gateway (thrifty serve), "
        "the saving of every mechanism (thrifty bench replay); see the README.[/]"
    )


def reset_counters(store: Any, namespace: str) -> None:
    """Zero a namespace's counters on any backend: add the negation of what they hold (the
    Store protocol's one way to change counters, atomic on shared backends)."""
    held = store.read_counters(namespace)
    store.add_counters(namespace, {name: -value for name, value in held.items() if value})


def demo(
    workload: Annotated[
        str,
        typer.Option(
            help="shipped (questions written for thrifty, inside the package), support (the "
            "Bitext data set in ../shared/data or --data) or auto (support when found, else "
            "shipped)."
        ),
    ] = "shipped",
    data: Annotated[
        Path | None,
        typer.Option(help="The Bitext support CSV(.gz); implies --workload support."),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            help="Replay the first N requests of the stream (support: sample N); the shipped "
            "stream holds 166."
        ),
    ] = workloads.DEFAULT_DEMO_REQUESTS,
    max_tokens: Annotated[int, typer.Option(help="Completion cap per answer.")] = 48,
    cache: Annotated[str, typer.Option("--cache", help="Cache URL.")] = DEFAULT_CACHE,
    keep: Annotated[
        bool, typer.Option(help="Keep the demo's earlier entries (default: start empty).")
    ] = False,
    price_model: Annotated[
        str, typer.Option(help="Price the tokens at this model's rates.")
    ] = "gpt-4o-mini",
    seed: Annotated[int | None, typer.Option(help="Shuffle/sampling seed.")] = None,
) -> None:
    """Replay support questions through the cache in front of the local model.

    The model is the embedded SmolLM2-135M-Instruct (on mistral.rs, or llama.cpp); the report
    shows hits, latency, tokens and dollars saved (at --price-model's rates) and the time saved.
    """
    console = Console()
    if data is not None:
        workload = "support"
    if workload not in WORKLOADS:
        fail(f"unknown workload {workload!r}; use one of: {', '.join(WORKLOADS)}", EXIT_USAGE)
    if max_tokens < 1:
        fail("--max-tokens must be at least 1", EXIT_USAGE)
    with exit_codes():
        seed_value = workloads.DEFAULT_SEED if seed is None else seed
        if workload == "auto":
            workload = "support" if workloads.support_data_available() else "shipped"
        if workload == "support":
            path = workloads.find_support_data(data)
            stream = workloads.support_workload(path, limit, seed_value)
        else:
            stream = workloads.shipped_workload(seed_value).limited(limit)
        store = Cache(cache, namespace=DEMO_NAMESPACE)
        try:
            if price_model not in store.prices:
                fail(f"no price known for {price_model!r}; try gpt-4o-mini or gpt-4o", EXIT_USAGE)
            console.print(
                f"[bold]workload:[/] {stream.name} — {stream.description}: "
                f"{len(stream.requests)} requests, {stream.distinct} distinct "
                f"({stream.count('repeat')} exact repeats, "
                f"{stream.count('paraphrase')} paraphrases)"
            )
            if not keep:  # a fresh start: the entries and the counters of earlier runs go
                store.invalidate(namespace=DEMO_NAMESPACE)
                reset_counters(store.store, DEMO_NAMESPACE)
            report = _run(console, stream, store, max_tokens, price_model, cache)
        finally:
            store.close()
        render(console, report, cache, max_tokens)


def _run(
    console: Console,
    stream: workloads.Workload,
    store: Cache,
    max_tokens: int,
    price_model: str,
    cache_url: str,
) -> DemoReport:
    provider = local_provider()
    started = time.perf_counter()
    asyncio.run(provider.aload())
    console.print(
        f"[bold]model:[/] SmolLM2-135M-Instruct via {provider.runtime}, loaded in "
        f"{time.perf_counter() - started:.2f} s; cache: {cache_url}"
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("hits {task.fields[hits]}"),
        TimeElapsedColumn(),
        console=console,
    )
    hits = 0
    with progress:
        task = progress.add_task("replaying", total=len(stream.requests), hits=0)

        def advance(outcome: Outcome) -> None:
            nonlocal hits
            hits += outcome.status != "miss"
            progress.update(task, advance=1, hits=hits)

        try:
            return asyncio.run(
                replay(
                    stream,
                    store,
                    provider,
                    max_tokens=max_tokens,
                    price_model=price_model,
                    on_outcome=advance,
                )
            )
        finally:
            asyncio.run(provider.aclose())


def register(app: typer.Typer) -> None:
    app.command("demo", epilog=EXAMPLE)(demo)
