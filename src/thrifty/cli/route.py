"""``thrifty route train`` / ``thrifty route eval``: learn when the cheap model is good enough.

The outcomes file is JSONL, optionally gzipped (``thrifty.routing.outcomes``): ``{"prompt",
"cheap_ok", "strong_ok"}`` lines, ``{"prompt", "cheap_answer", "strong_answer"}`` (labelled by
agreement), what the gateway's feedback recorded, or per-model correctness columns named by
``--cheap-column``/``--strong-column``. ``--split dev|test`` keeps one side of the fixed split by
a hash of the prompt. Prompts are embedded with thrifty's local MiniLM by default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from thrifty.cli._common import EXIT_USAGE, exit_codes, fail

EXAMPLE = (
    "Outcomes: JSONL or JSONL.gz, one object a line with the prompt as 'prompt' (text) or "
    "'messages' (a chat) and the models' correctness: 'cheap_ok' and optionally 'strong_ok' "
    "(true/false or 1/0), or columns named by --cheap-column/--strong-column (RouteLLM's data: "
    "--cheap-column mixtral_correct --strong-column gpt4_correct), or 'cheap_answer' and "
    "'strong_answer' (labelled by agreement). --split dev|test keeps one side of a fixed split: "
    "sha256 of the prompt, first byte < 154 -> dev (60 %), else test. "
    "Example: thrifty route train --data mmlu.jsonl.gz --split dev --cheap-column "
    "mixtral_correct --strong-column gpt4_correct --group-column subject --kind grouped "
    "--inputs embedding+prompt -o router.npz --target-quality 0.95; thrifty route eval --router "
    "router.npz --data mmlu.jsonl.gz --split test --cheap-column mixtral_correct "
    "--strong-column gpt4_correct"
)
CheapColumn = Annotated[
    str, typer.Option("--cheap-column", help="Field with the cheap model's correctness.")
]
StrongColumn = Annotated[
    str, typer.Option("--strong-column", help="Field with the strong model's correctness.")
]
GroupColumn = Annotated[
    str | None,
    typer.Option(
        "--group-column",
        help="Field naming each prompt's group (MMLU: subject), learned by --kind grouped.",
    ),
]
Split = Annotated[
    str | None,
    typer.Option(help="Keep only 'dev' or 'test' of the fixed hash split (default: all rows)."),
]

route_app = typer.Typer(
    help="Train and evaluate the learned router of route models (thrifty/auto).",
    no_args_is_help=True,
)


def _embed(embedder: Any, texts: list[str]) -> np.ndarray:
    return np.asarray(embedder.embed(texts), dtype=np.float32)


def _labels(outcomes: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    cheap = np.array([o.cheap_ok for o in outcomes], dtype=float)
    strong = np.array([1.0 if o.strong_ok is None else float(o.strong_ok) for o in outcomes])
    return cheap, strong


@route_app.command("train", epilog=EXAMPLE)
def train(
    data: Annotated[Path, typer.Option("--data", help="Outcomes JSONL file.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Router file to write (.json, or .npz).")
    ],
    target_strong_share: Annotated[
        float | None,
        typer.Option(help="Calibrate the threshold to send this share to the strong model."),
    ] = None,
    target_quality: Annotated[
        float | None,
        typer.Option(
            help="Calibrate to the least strong share reaching this share of strong-only quality."
        ),
    ] = None,
    target_cost: Annotated[
        float | None,
        typer.Option(
            help="Calibrate to a dollar budget: this share of strong-only cost (needs "
            "--cost-ratio)."
        ),
    ] = None,
    cost_ratio: Annotated[
        float | None,
        typer.Option(help="A cheap call's cost over a strong call's (stored for retargeting)."),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            help="logistic, mlp, mf or grouped (JSON or .npz), knn or stack (.npz; stack reads "
            "--inputs embedding+prompt+difficulty): see benchmarks/RESULTS.md."
        ),
    ] = "logistic",
    inputs: Annotated[
        str,
        typer.Option(
            help="embedding, embedding+prompt (adds cheap prompt features), or "
            "embedding+prompt+difficulty (and multiple-choice difficulty features; --kind stack)."
        ),
    ] = "embedding",
    label: Annotated[
        str,
        typer.Option(
            help="What p predicts: cheap_ok, or no_gain (the strong model would not do better)."
        ),
    ] = "cheap_ok",
    cheap_column: CheapColumn = "cheap_ok",
    strong_column: StrongColumn = "strong_ok",
    group_column: GroupColumn = None,
    split: Split = None,
    embedder: Annotated[
        str,
        typer.Option(
            help="minilm, static (a table distilled from MiniLM: sub-ms decisions instead of "
            "MiniLM's 3-20 ms, 1-4 points more strong calls at 95 %) or hashing."
        ),
    ] = "minilm",
    heldout: Annotated[float, typer.Option(help="Share kept out for calibration.")] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
) -> None:
    """Fit a router on recorded outcomes and calibrate its threshold on a held-out part."""
    from thrifty.routing.outcomes import load_outcomes
    from thrifty.routing.router import train_router
    from thrifty.semantic.embedder import make_embedder

    targets = [t for t in (target_strong_share, target_quality, target_cost) if t is not None]
    if len(targets) > 1:
        fail("give one target, not both", EXIT_USAGE)
    if target_cost is not None and cost_ratio is None:
        fail(
            "--target-cost needs --cost-ratio (a cheap call's cost over a strong call's)",
            EXIT_USAGE,
        )
    if not 0.0 < heldout < 1.0:
        fail("--heldout must be between 0 and 1", EXIT_USAGE)
    with exit_codes():
        outcomes = load_outcomes(
            data,
            cheap_column=cheap_column,
            strong_column=strong_column,
            group_column=group_column,
            split=split,
        )
        texts = [o.text for o in outcomes]
        vectors = _embed(make_embedder(embedder), texts)
        cheap, strong = _labels(outcomes)
        router = train_router(
            vectors,
            cheap,
            strong,
            texts=texts,
            groups=[o.group for o in outcomes] if group_column else None,
            embedder=embedder,
            kind=kind,
            inputs=inputs,
            label=label,
            heldout=heldout,
            target_strong_share=target_strong_share,
            target_quality=target_quality,
            target_cost=target_cost,
            cost_ratio=cost_ratio,
            seed=seed,
        )
        router.save(output)
    point = min(router.curve, key=lambda c: abs(c.threshold - router.threshold))
    Console().print(
        f"trained a {kind} router on {len(outcomes):,} outcomes "
        f"({router.info['heldout']:,} held out): threshold {router.threshold:.3f}, "
        f"held-out strong share {point.strong_share:.1%}, quality "
        f"{point.relative_quality:.1%} of strong-only -> {output}",
        highlight=False,
    )


def _curve_rows(
    p: np.ndarray, cheap: np.ndarray, strong: np.ndarray, threshold: float, ratio: float
) -> list[dict[str, Any]]:
    from thrifty.routing.calibration import evaluate, routing_curve

    rows = [("", point) for point in routing_curve(p, cheap, strong, steps=10)]
    rows.append(("router", evaluate(p, cheap, strong, threshold)))
    return [
        {
            "at": at,
            "threshold": round(point.threshold, 4),
            "strong_share": round(point.strong_share, 4),
            "quality": round(point.quality, 4),
            "relative_quality": round(point.relative_quality, 4),
            "relative_cost": round(point.strong_share + (1 - point.strong_share) * ratio, 4),
        }
        for at, point in sorted(rows, key=lambda r: (r[1].strong_share, r[0]))
    ]


@route_app.command("eval", epilog=EXAMPLE)
def evaluate_router(
    router_path: Annotated[Path, typer.Option("--router", help="Router file.")],
    data: Annotated[Path, typer.Option("--data", help="Held-out outcomes JSONL file.")],
    cheap_model: Annotated[
        str, typer.Option("--cheap", help="Priced as the cheap model.")
    ] = "gpt-4o-mini",
    strong_model: Annotated[
        str, typer.Option("--strong", help="Priced as the strong model.")
    ] = "gpt-4o",
    cost_ratio: Annotated[
        float | None,
        typer.Option(
            help="A cheap call's cost over a strong call's (instead of --cheap/--strong)."
        ),
    ] = None,
    cheap_column: CheapColumn = "cheap_ok",
    strong_column: StrongColumn = "strong_ok",
    split: Split = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Quality, strong share and cost of a router on held-out outcomes, with the cost curve."""
    from thrifty.accounting.prices import PriceTable
    from thrifty.routing.outcomes import load_outcomes
    from thrifty.routing.route import router_embedder
    from thrifty.routing.router import LearnedRouter

    with exit_codes():
        router = LearnedRouter.load(router_path)
        outcomes = load_outcomes(
            data, cheap_column=cheap_column, strong_column=strong_column, split=split
        )
        texts = [o.text for o in outcomes]
        p = router.probability(_embed(router_embedder(router), texts), texts)
    cheap, strong = _labels(outcomes)
    if cost_ratio is not None:
        ratio = cost_ratio
    else:
        prices = PriceTable()
        strong_cost = prices.cost(strong_model, 1000, 200)
        ratio = prices.cost(cheap_model, 1000, 200) / strong_cost if strong_cost else 0.0
    rows = _curve_rows(p, cheap, strong, router.threshold, ratio)
    mine = next(r for r in rows if r["at"] == "router")
    if as_json:
        typer.echo(
            json.dumps(
                {"outcomes": len(outcomes), "router": mine, "curve": rows, "cost_ratio": ratio},
                indent=2,
            )
        )
        return
    table = Table(
        title=f"{router_path} on {data} ({len(outcomes):,} outcomes; cost at "
        f"{cheap_model} vs {strong_model} prices)",
        title_justify="left",
    )
    for column in ("", "strong share", "quality", "vs strong-only", "cost vs strong-only"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row["at"],
            f"{row['strong_share']:.1%}",
            f"{row['quality']:.1%}",
            f"{row['relative_quality']:.1%}",
            f"{row['relative_cost']:.1%}",
            style="bold" if row["at"] else None,
        )
    console = Console()
    console.print(table)
    console.print(
        f"router (threshold {router.threshold:.3f}): quality {mine['quality']:.1%} "
        f"({mine['relative_quality']:.1%} of strong-only), strong share "
        f"{mine['strong_share']:.1%}, cost {mine['relative_cost']:.1%} of strong-only",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(route_app, name="route")
