"""``thrifty bench replay -o DIR``: the replay of :mod:`thrifty.replay` from the command line;
``thrifty bench compress``: your model's answers with and without compression
(:mod:`thrifty.compression.answer_check`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from thrifty.replay.report import table_rows

if TYPE_CHECKING:
    from thrifty.compression.answer_check import Checked, Summary
    from thrifty.providers.base import Provider

bench_app = typer.Typer(help="Benchmarks of thrifty's mechanisms.", no_args_is_help=True)


@bench_app.command("replay")
def replay_command(
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")],
    data: Annotated[
        Path, typer.Option(help="The shared data folder (else the shipped sample).")
    ] = Path("../shared/data"),
    requests: Annotated[int, typer.Option(min=1, help="Requests per step.")] = 300,
    support: Annotated[int, typer.Option(min=0, help="Distinct support questions.")] = 150,
    rag: Annotated[int, typer.Option(min=0, help="Distinct RAG questions.")] = 50,
    mmlu: Annotated[
        int, typer.Option(min=0, help="Distinct MMLU questions (routing quality).")
    ] = 0,
    intents: Annotated[
        int, typer.Option(min=0, help="Distinct banking77 messages (GPT-4 / GPT-3.5 labels).")
    ] = 50,
    chat: Annotated[
        int, typer.Option(min=0, help="Distinct arena-hard chat prompts (recorded answers).")
    ] = 50,
    upstream_ms_per_call: Annotated[
        float, typer.Option(min=0, help="Simulated upstream latency per call (ms).")
    ] = 500.0,
    upstream_ms_per_token: Annotated[
        float, typer.Option(min=0, help="Simulated upstream latency per output token (ms).")
    ] = 15.0,
    threshold: Annotated[
        float | None, typer.Option(help="Semantic threshold (default: thrifty's).")
    ] = None,
    embedder: Annotated[str, typer.Option(help="minilm or hashing.")] = "minilm",
) -> None:
    """Replay a support + RAG (+ banking77 intents, arena-hard chat) workload through the
    gateway in-process, switching on none -> exact -> semantic -> routing -> compression ->
    student in turn (FAKE upstream answering from the data with a simulated latency, real
    prices); writes requests.jsonl, summary.json, report.md and report.html."""
    from thrifty.replay.run import replay
    from thrifty.replay.upstream import UpstreamLatency

    summary, _ = replay(
        out,
        data=data if data.is_dir() else None,
        requests=requests,
        support=support,
        rag=rag,
        mmlu=mmlu,
        intents=intents,
        chat=chat,
        threshold=threshold,
        embedder=embedder,
        latency=UpstreamLatency(upstream_ms_per_call, upstream_ms_per_token),
    )
    console = Console()
    for row in table_rows(summary["steps"]):
        console.print("  ".join(row))
    console.print(f"report: {out / 'report.html'}")


@bench_app.command("compress")
def compress_command(
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")],
    rows: Annotated[
        Path | None,
        typer.Option(
            help='JSON lines {"question", "context": text or documents, "answers": [...]}.'
        ),
    ] = None,
    nq: Annotated[
        Path | None,
        typer.Option(help="NQ's nq_open_oracle.jsonl.gz: 20-passage contexts built from it."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows asked (each twice).")] = 100,
    ratio: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Share of context tokens kept.")
    ] = 0.4,
    api_base: Annotated[
        str | None,
        typer.Option(help="Your model's OpenAI-compatible base URL (default: the local model)."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name sent upstream.")] = None,
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the API key.")
    ] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option(min=1, help="Rows asked at once.")] = 4,
    max_tokens: Annotated[int, typer.Option(min=1, help="Answer length cap.")] = 32,
    embedder: Annotated[str, typer.Option(help="Compression embedder: static or minilm.")] = (
        "static"
    ),
) -> None:
    """Ask your model each RAG question with its whole context and with the compressed one, and
    compare the answers (with each other, and with the gold answers when rows give them);
    writes results.jsonl and summary.json."""
    import asyncio
    import os

    from rich.progress import Progress

    from thrifty.cli._common import fail
    from thrifty.compression import Compressor
    from thrifty.compression.answer_check import check, load_rows, nq_rows, write
    from thrifty.errors import ConfigError

    if (rows is None) == (nq is None):
        fail("give one of --rows FILE or --nq FILE")
    try:
        data = load_rows(rows, limit) if rows is not None else []  # a bad file fails first
        compressor = Compressor(embedder)  # (a first static embedder builds its table)
        if nq is not None:
            data = nq_rows(nq, compressor, limit=limit)
    except (ConfigError, OSError) as exc:
        fail(str(exc))
    provider = _provider(api_base, model, os.environ.get(api_key_env))

    async def run() -> tuple[list[Checked], Summary]:
        with Progress(console=Console(stderr=True)) as bar:
            task = bar.add_task("asking twice", total=len(data))
            try:
                return await check(
                    data,
                    provider,
                    compressor,
                    ratio=ratio,
                    model=model,
                    max_tokens=max_tokens,
                    concurrency=concurrency,
                    progress=lambda: bar.advance(task),
                )
            finally:
                await provider.aclose()

    results, summary = asyncio.run(run())
    write(out, results, summary)
    _print_summary(summary)
    console = Console()
    console.print(f"results: {out / 'results.jsonl'}, {out / 'summary.json'}")


def _provider(api_base: str | None, model: str | None, api_key: str | None) -> Provider:
    if api_base:
        from thrifty.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(api_base, api_key, model)
    from thrifty.providers.local import local_provider

    return local_provider()


def _print_summary(summary: Summary) -> None:
    from rich.table import Table

    table = Table(
        title=f"answers with the whole and the compressed context (ratio {summary.ratio})"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    done = summary.rows - summary.failed
    table.add_row("rows asked (failed)", f"{done} ({summary.failed})")
    table.add_row(
        "context tokens, whole -> compressed",
        f"{summary.tokens_before} -> {summary.tokens_after} ({summary.cut:.1%} cut)",
    )
    if summary.prompt_tokens_whole is not None:
        table.add_row(
            "prompt tokens billed, whole -> compressed",
            f"{summary.prompt_tokens_whole} -> {summary.prompt_tokens_compressed}",
        )
    if done:
        table.add_row("same answer (normalised)", f"{summary.same} ({summary.same / done:.1%})")
        table.add_row("mean token F1 between the answers", f"{summary.mean_f1:.3f}")
    if summary.graded:
        g = summary.graded
        table.add_row(
            "right, whole context", f"{summary.right_whole} ({summary.right_whole / g:.1%})"
        )
        table.add_row(
            "right, compressed context",
            f"{summary.right_compressed} ({summary.right_compressed / g:.1%})",
        )
        table.add_row("lost by compression / gained", f"{summary.lost} / {summary.gained}")
    Console().print(table)
    for error in summary.errors[:5]:
        Console(stderr=True).print(f"[red]failed:[/red] {error}")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
