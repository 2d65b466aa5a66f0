"""``thrifty distill train|predict|eval|export``: a local student for the easy traffic.

Teacher pairs are JSONL, ``{"input": "...", "output": "..."}`` per line (``thrifty.distill.pairs``).
Inputs are embedded with thrifty's local MiniLM by default (``--embedder hashing`` needs no model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from thrifty.cli._common import EXIT_USAGE, exit_codes, fail

if TYPE_CHECKING:
    from thrifty.distill.evaluate import EvalReport

distill_app = typer.Typer(
    help="Train, serve, evaluate and export a local student that answers "
    "the easy traffic instead of the teacher model.",
    no_args_is_help=True,
)

TRAIN_EXAMPLE = (
    "Example: thrifty distill train pairs.jsonl -o student/ --target-agreement 0.97 "
    '(pairs.jsonl: {"input": "...", "output": "..."} per line)'
)
PREDICT_EXAMPLE = "Example: thrifty distill predict student/ requests.jsonl -o answers.jsonl"
EVAL_EXAMPLE = (
    "Example: thrifty distill eval student/ held.jsonl --train pairs.jsonl --plot eval.png"
)
EXPORT_EXAMPLE = (
    "Example: thrifty distill export pairs.jsonl -o finetune.jsonl "
    '--system "Answer with the intent name."'
)


@distill_app.command("train", epilog=TRAIN_EXAMPLE)
def train(
    data: Annotated[Path, typer.Argument(help="Teacher pairs (JSONL).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model dir to write.")],
    target_agreement: Annotated[
        float, typer.Option(help="Agreement with the teacher the gate is calibrated to.")
    ] = 0.97,
    head: Annotated[
        list[str] | None,
        typer.Option(help="Head kind: ridge, logistic, mlp or knn; repeat for a committee."),
    ] = None,
    score: Annotated[
        str | None,
        typer.Option(
            help="Confidence: margin, prob or committee (default: margin, committee for "
            "several heads)."
        ),
    ] = None,
    embedder: Annotated[str, typer.Option(help="minilm or hashing.")] = "minilm",
    folds: Annotated[int, typer.Option(help="Folds of the out-of-fold calibration.")] = 5,
    add: Annotated[
        bool,
        typer.Option(
            "--add",
            help="Add DATA to the pairs the student in --output was trained on and retrain it "
            "there (its heads and score kept unless given; only the new pairs are embedded).",
        ),
    ] = False,
) -> None:
    """Train a student on teacher pairs; its gate is calibrated out of fold to the target."""
    from thrifty.distill.features import Featurizer
    from thrifty.distill.incremental import add_pairs, train_and_keep
    from thrifty.distill.modeldir import load_student
    from thrifty.distill.pairs import read_pairs
    from thrifty.distill.training import StudentConfig

    with exit_codes():
        pairs = read_pairs(data)
        if add:
            old = load_student(output)
            heads = tuple(head or (h.kind for h in old.heads))
            score = score or old.gate.score
        else:
            heads = tuple(head or ("ridge",))
        config = StudentConfig(
            heads=heads,
            target_agreement=target_agreement,
            folds=folds,
            score=score or ("committee" if len(heads) > 1 else "margin"),
        )
        if add:
            student = add_pairs(pairs, output, config)
        else:
            student = train_and_keep(pairs, output, Featurizer(embedder=embedder), config)
    info = student.info
    Console().print(
        f"trained a {'+'.join(heads)} student on {info['pairs']:,} pairs ({info['classes']:,} "
        f"answers): bar {student.gate.threshold:.4f}; held out, it answers "
        f"{info['held_out_coverage']:.1%} at {info['held_out_agreement']:.1%} agreement "
        f"(target {target_agreement:.0%}) -> {output}",
        highlight=False,
    )


@distill_app.command("predict", epilog=PREDICT_EXAMPLE)
def predict(
    model_dir: Annotated[Path, typer.Argument(help="Model dir written by train.")],
    data: Annotated[Path, typer.Argument(help="Inputs (JSONL; 'output' optional).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Answers (JSONL) to write.")],
) -> None:
    """Write {"output": answer or null, "confidence": float} per input line (null: ask the
    teacher)."""
    from thrifty.distill.modeldir import load_student
    from thrifty.distill.pairs import read_pairs

    with exit_codes():
        student = load_student(model_dir)
        pairs = read_pairs(data, require_output=False)
        answers = student.predict([p.input for p in pairs])
    try:
        with output.open("w", encoding="utf-8") as out:
            for answer, conf in answers:
                out.write(json.dumps({"output": answer, "confidence": round(conf, 6)}) + "\n")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    answered = sum(a is not None for a, _ in answers)
    share = answered / len(answers) if answers else 0.0
    Console().print(
        f"the student answered {answered:,} of {len(answers):,} inputs ({share:.1%});"
        f" the rest need the teacher -> {output}",
        highlight=False,
    )


@distill_app.command("eval", epilog=EVAL_EXAMPLE)
def evaluate_student(
    model_dir: Annotated[Path, typer.Argument(help="Model dir written by train.")],
    data: Annotated[Path, typer.Argument(help="Held-out teacher pairs (JSONL).")],
    train_data: Annotated[
        Path | None,
        typer.Option("--train", help="The training pairs: adds a learning curve by teacher calls."),
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the plot here (PNG).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Coverage, agreement with the teacher and teacher calls saved on held-out pairs."""
    from thrifty.distill.evaluate import evaluate, learning_curve
    from thrifty.distill.modeldir import load_student
    from thrifty.distill.pairs import read_pairs
    from thrifty.distill.plot import plot_eval
    from thrifty.distill.training import StudentConfig

    if plot is not None and plot.suffix.lower() != ".png":
        fail("--plot writes a PNG file (name it .png)", EXIT_USAGE)
    with exit_codes():
        student = load_student(model_dir)
        held = read_pairs(data)
        report = evaluate(student, held)
        learning = []
        if train_data is not None:
            config = StudentConfig(
                heads=tuple(h.kind for h in student.heads),
                score=student.gate.score,
                target_agreement=student.gate.target,
            )
            learning = learning_curve(student, read_pairs(train_data), held, config)
        if plot is not None:
            plot_eval(report, learning, plot, title=f"{model_dir.name} on {data.name}")
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "pairs": report.pairs,
                    "threshold": report.threshold,
                    "coverage": report.coverage,
                    "agreement": report.agreement,
                    "teacher_calls_saved": report.teacher_calls_saved,
                    "accuracy": report.accuracy,
                    "learning_curve": [vars_of(p) for p in learning],
                },
                indent=2,
            )
        )
        return
    _print_table(report, model_dir, data)
    for point in learning:
        Console().print(
            f"  after {point.teacher_calls:,} teacher calls: coverage "
            f"{point.coverage:.1%} at {point.agreement:.1%} agreement",
            highlight=False,
        )
    if plot is not None:
        Console().print(f"plot -> {plot}", highlight=False)


def vars_of(point: object) -> dict[str, object]:
    """A slotted dataclass as a dict (for --json)."""
    from dataclasses import asdict

    return asdict(point)  # type: ignore[call-overload]


def _print_table(report: EvalReport, model_dir: Path, data: Path) -> None:
    table = Table(
        title=f"{model_dir} on {data} ({report.pairs:,} held-out pairs)", title_justify="left"
    )
    for column in ("bar", "coverage", "agreement", "teacher calls saved"):
        table.add_column(column, justify="right")
    step = max(1, len(report.curve) // 8)
    rows = {id(p): p for p in report.curve[::step]}
    for point in sorted(rows.values(), key=lambda p: -p.threshold):
        table.add_row(
            f"{point.threshold:.4f}",
            f"{point.coverage:.1%}",
            f"{point.agreement:.1%}",
            f"{point.answered:,}",
        )
    table.add_row(
        f"{report.threshold:.4f}",
        f"{report.coverage:.1%}",
        f"{report.agreement:.1%}",
        f"{report.teacher_calls_saved:,}",
        style="bold",
    )
    console = Console()
    console.print(table)
    console.print(
        f"student (bar {report.threshold:.4f}): coverage {report.coverage:.1%}, "
        f"agreement with the teacher {report.agreement:.1%}, teacher calls saved "
        f"{report.teacher_calls_saved:,} of {report.pairs:,}",
        highlight=False,
    )


@distill_app.command("export", epilog=EXPORT_EXAMPLE)
def export(
    data: Annotated[Path, typer.Argument(help="Teacher pairs (JSONL).")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="OpenAI fine-tuning JSONL to write.")
    ],
    system: Annotated[str | None, typer.Option(help="A system message on every line.")] = None,
) -> None:
    """Write the pairs in OpenAI's chat fine-tuning format, to fine-tune a hosted small model."""
    from thrifty.distill.pairs import export_openai, read_pairs

    with exit_codes():
        count = export_openai(read_pairs(data), output, system=system)
    Console().print(f"exported {count:,} pairs -> {output}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(distill_app, name="distill")
