"""The replay's report: a cost waterfall (each step's saving with its quality cost written beside
it), the hit rate as the cache fills, latency distributions, as PNGs in a Markdown and an HTML
page. Every number comes from ``summary.json`` / ``requests.jsonl``."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt


def quality_note(step: dict[str, Any]) -> str:
    """The quality cost printed beside a step's saving."""
    return (
        f"{step['wrong_hits']} wrong hits, {step['changed_answers']} answers changed, "
        f"{step['wrong_answers']} wrong answers"
    )


def waterfall(steps: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 5.4))
    previous = steps[0]["cost_usd"]
    for i, step in enumerate(steps):
        cost = step["cost_usd"]
        if i == 0:
            ax.bar(i, cost, color="#7a7a7a")
        else:
            ax.bar(
                i, previous - cost, bottom=cost, color="#2e9e5b" if cost <= previous else "#c0392b"
            )
            ax.bar(i, cost, color="#c9d6e3", alpha=0.6)
        label = f"${cost:,.4f}" + ("" if i == 0 else f"\n{step['vs_first_pct']:+.0f} %")
        ax.text(i, cost, label, ha="center", va="bottom", fontsize=8)
        previous = cost
    ticks = [
        s["name"] if i == 0 else s["name"] + "\n" + quality_note(s).replace(", ", "\n")
        for i, s in enumerate(steps)
    ]
    ax.set_xticks(range(len(steps)), ticks, fontsize=7.5)
    ax.set_ylabel("cost of the replay (USD)")
    ax.set_title("Cost waterfall: each mechanism switched on in turn")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def hit_rate_curve(records: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name in dict.fromkeys(r["step"] for r in records):
        rows = [r for r in records if r["step"] == name]
        hits, curve = 0, []
        for n, row in enumerate(rows, 1):
            hits += row["mechanism"] in ("exact_hit", "semantic_hit", "coalesced")
            curve.append(hits / n)
        if hits:
            ax.plot(range(1, len(curve) + 1), curve, label=name)
    ax.set_xlabel("requests replayed")
    ax.set_ylabel("hit rate so far")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Hit rate as the cache fills")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_boxes(records: list[dict[str, Any]], path: Path) -> None:
    names = list(dict.fromkeys(r["step"] for r in records))
    data = [[r["latency_ms"] for r in records if r["step"] == n] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_ylabel("gateway latency (ms, in-process)")
    ax.set_title("Latency per step (FAKE upstream answers at once)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PLOTS = {
    "waterfall.png": "Cost waterfall",
    "hit_rate.png": "Hit rate as the cache fills",
    "latency.png": "Latency per step",
}
COLUMNS = (
    "step",
    "requests",
    "cost $",
    "baseline $",
    "vs none",
    "hit rate",
    "wrong hits",
    "answers changed",
    "wrong answers",
    "p50 ms",
    "p95 ms",
)


def table_rows(steps: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            s["name"],
            f"{s['requests']:,}",
            f"{s['cost_usd']:.4f}",
            f"{s['baseline_cost_usd']:.4f}",
            f"{s['vs_first_pct']:+.1f} %",
            f"{s['hit_rate']:.1%}",
            str(s["wrong_hits"]),
            str(s["changed_answers"]),
            str(s["wrong_answers"]),
            f"{s['latency_ms_p50']:.1f}",
            f"{s['latency_ms_p95']:.1f}",
        ]
        for s in steps
    ]


def write_report(
    out: Path, summary: dict[str, Any], records: list[dict[str, Any]], meta: dict[str, Any]
) -> None:
    steps = summary["steps"]
    waterfall(steps, out / "waterfall.png")
    hit_rate_curve(records, out / "hit_rate.png")
    latency_boxes(records, out / "latency.png")
    rows = table_rows(steps)
    intro = (
        f"Workload: {meta['source']}; {meta['requests']} requests per step "
        f"({meta['distinct']} distinct), priced at accounting/prices.json rates; upstream: "
        f"a FAKE answering from the data. Baseline model {meta['strong']}, cheap model "
        f"{meta['cheap']}. Quality flags: a wrong hit serves another intent's or question's "
        "answer; a RAG answer is wrong when the (compressed) context lost the gold answer; "
        "routing changes only MMLU answers (each tier answers as GPT-4 or Mixtral did in "
        "RouteLLM's data) — the data has no cheap-model answers for support or RAG, so "
        "routing's quality cost there is not measured."
    )
    md = [
        "# thrifty bench replay",
        "",
        intro,
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + " --- |" * len(COLUMNS),
    ]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += [""] + [f"![{title}]({name})" for name, title in PLOTS.items()]
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    cells = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    images = "".join(f'<h2>{t}</h2><img src="{n}" alt="{t}">' for n, t in PLOTS.items())
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>thrifty bench replay</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
        "td,th{padding:2px 8px;text-align:right}</style>"
        f"<h1>thrifty bench replay</h1><p>{html.escape(intro)}</p>"
        f"<table id='steps'><tr>{cells}</tr>{body}</table>{images}",
        encoding="utf-8",
    )
