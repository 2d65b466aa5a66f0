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


#: What a wrong answer is, per kind of request (the report says it beside the figures).
JUDGED_BY = {
    "support": "a reference answer of another intent (routing cannot change a support answer: "
    "the data has no cheap-model answers for it, so routing's cost there is not measured)",
    "rag": "the answer no longer names a gold answer (the compressed context lost it)",
    "mmlu": "the tier's model got the question wrong in RouteLLM's records",
    "intent": "not the gold banking77 intent (each tier answers with the label GPT-4 or "
    "GPT-3.5 gave in OCaTS's records)",
    "chat": "a cheap (gpt-3.5-turbo-0125) answer whose agreement with gpt-4-0314's recorded "
    "answer (MiniLM cosine) is below the bar, or another prompt's answer (a proxy, no judge)",
}


def kind_rows(steps: list[dict[str, Any]]) -> list[list[str]]:
    """Per kind and step: cost, answers changed and wrong answers (+ the change from the step
    before: the quality cost of the mechanism that step switched on)."""
    kinds = sorted({k for s in steps for k in s["kinds"]})
    rows = []
    for kind in kinds:
        previous = None
        for step in steps:
            part = step["kinds"].get(kind)
            if part is None:
                continue
            wrong = part["wrong_answers"]
            delta = "" if previous is None else f" ({wrong - previous:+d})"
            rows.append(
                [
                    kind,
                    step["name"],
                    f"{part['requests']:,}",
                    f"{part['cost_usd']:.4f}",
                    f"{part['changed_answers']}",
                    f"{wrong}{delta}",
                ]
            )
            previous = wrong
    return rows


CHAT_NOTE = (
    " (chat answers and their lengths are gpt-4-0314's and gpt-3.5-turbo-0125's recorded ones,"
    " priced at these two models' rates)"
)
KIND_COLUMNS = (
    "kind",
    "step",
    "requests",
    "cost $",
    "answers changed",
    "wrong answers (vs step before)",
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
    data = [[max(r["latency_total_ms"], 0.01) for r in records if r["step"] == n] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms): gateway + simulated upstream")
    ax.set_title("Latency per step (measured gateway + simulated upstream)")
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
    "gateway p50 / p95 ms",
    "with upstream p50 / p95 ms",
    "mechanisms",
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
            f"{s['latency_ms_p50']:.1f} / {s['latency_ms_p95']:.1f}",
            f"{s['latency_total_ms_p50']:.0f} / {s['latency_total_ms_p95']:.0f}",
            ", ".join(f"{m} {n}" for m, n in s["mechanisms"].items()),
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
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(meta.get("kinds", {}).items()))
    intro = (
        f"Workload: {meta['source']}; {meta['requests']} requests per step "
        f"({meta['distinct']} distinct: {kinds}), priced at accounting/prices.json rates; "
        f"upstream: a FAKE answering from the data. Baseline model {meta['strong']}, cheap "
        f"model {meta['cheap']}{CHAT_NOTE if 'chat' in meta.get('kinds', {}) else ''}. Upstream "
        f"latency is simulated, not slept: {meta['upstream_per_call_ms']:g} ms per call + "
        f"{meta['upstream_per_token_ms']:g} ms per output token, the same for both models, "
        "added to the gateway's measured in-process latency for each upstream call a request "
        "made."
    )
    judged = [f"{kind}: {JUDGED_BY[kind]}" for kind in sorted(meta.get("kinds", {}))]
    if "chat_agreement_bar" in meta:
        judged.append(
            f"chat agreement bar: {meta['chat_agreement_bar']:.3f}, the 5th percentile of "
            "gpt-4-0613's agreement with gpt-4-0314 on dev prompts"
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
    md += ["", "## Quality cost by kind of request", "", "A wrong answer is, per kind:", ""]
    md += [f"- {line}" for line in judged]
    md += ["", "| " + " | ".join(KIND_COLUMNS) + " |", "|" + " --- |" * len(KIND_COLUMNS)]
    md += ["| " + " | ".join(r) + " |" for r in kind_rows(steps)]
    md += [""] + [f"![{title}]({name})" for name, title in PLOTS.items()]
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    images = "".join(f'<h2>{t}</h2><img src="{n}" alt="{t}">' for n, t in PLOTS.items())
    notes = "".join(f"<li>{html.escape(line)}</li>" for line in judged)
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>thrifty bench replay</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
        "td,th{padding:2px 8px;text-align:right}</style>"
        f"<h1>thrifty bench replay</h1><p>{html.escape(intro)}</p>"
        f"{html_table('steps', COLUMNS, rows)}<h2>Quality cost by kind of request</h2>"
        f"<ul>{notes}</ul>{html_table('kinds', KIND_COLUMNS, kind_rows(steps))}{images}",
        encoding="utf-8",
    )


def html_table(name: str, columns: tuple[str, ...], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table id='{name}'><tr>{cells}</tr>{body}</table>"
