"""The whole replay: every step over the same traffic, then ``requests.jsonl``, ``summary.json``
and the report in the output folder, with a rich progress bar."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from rich.progress import Progress

from thrifty.ledger import LedgerSummary
from thrifty.replay.report import write_report
from thrifty.replay.runner import CHEAP, STEPS, STRONG, run_step, steps
from thrifty.replay.streams import load_items
from thrifty.replay.student import train as train_student
from thrifty.replay.summary import summarize_records
from thrifty.replay.upstream import UpstreamLatency
from thrifty.replay.workload import traffic


def replay(
    out: Path,
    *,
    data: Path | None,
    requests: int = 300,
    support: int = 150,
    rag: int = 50,
    mmlu: int = 0,
    intents: int = 0,
    chat: int = 0,
    threshold: float | None = None,
    names: tuple[str, ...] = STEPS,
    embedder: str = "minilm",
    latency: UpstreamLatency | None = None,
    quiet: bool = False,
) -> tuple[dict[str, Any], dict[str, LedgerSummary]]:
    """Run the replay into ``out``; the summary and each step's ledger summary."""
    out.mkdir(parents=True, exist_ok=True)
    latency = latency or UpstreamLatency()
    items, source, notes = load_items(data, support, rag, mmlu, intents, chat, embedder)
    stream = traffic(items, requests)
    records: list[dict[str, Any]] = []
    ledgers: dict[str, LedgerSummary] = {}
    baseline: list[str] | None = None
    chosen = steps(names)
    student_dir = None
    if any(step.student for step in chosen):
        student_dir = train_student(data, items, out / "student")
    with Progress(disable=quiet) as progress:
        task = progress.add_task("replay", total=len(stream) * len(chosen))
        for step in chosen:
            progress.update(task, description=f"step {step.name}")
            result = run_step(
                step,
                stream,
                items,
                embedder=embedder,
                threshold=threshold,
                student_dir=student_dir,
                baseline_answers=baseline,
                progress=lambda: progress.advance(task),
                latency=latency,
            )
            if baseline is None:
                baseline = [r["answer"] for r in result.records]
            records += result.records
            ledgers[step.name] = result.ledger
    with (out / "requests.jsonl").open("w", encoding="utf-8") as lines:
        for record in records:
            lines.write(json.dumps(record, ensure_ascii=False) + "\n")
    summary = summarize_records(records)
    meta = {
        "source": source,
        "requests": len(stream),
        "distinct": len({id(i) for i in stream}),
        "strong": STRONG,
        "cheap": CHEAP,
        "kinds": dict(Counter(item.kind for item in items)),
        "upstream_per_call_ms": latency.per_call_ms,
        "upstream_per_token_ms": latency.per_token_ms,
        **notes,
    }
    (out / "summary.json").write_text(
        json.dumps({**summary, "workload": meta}, indent=2), encoding="utf-8"
    )
    write_report(out, summary, records, meta)
    return summary, ledgers
