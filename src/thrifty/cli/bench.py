"""``thrifty bench replay -o DIR``: the replay of :mod:`thrifty.replay` from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thrifty.replay.report import table_rows

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


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
