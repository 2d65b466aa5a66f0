"""Distillation: a local student taking over the easy traffic from a teacher, on real labels.

    python benchmarks/bench_distill.py                 # everything, figures for RESULTS.md
    python benchmarks/bench_distill.py --only warm     # warm start only (or: online, latency)
    python benchmarks/bench_distill.py --seeds 0 1 2   # online stream orders

Data (``../shared/data``; see its README): banking77 ``train``/``test`` and TREC ``train``/``test``
(gold labels), and ``distill/banking77_test_llm_labels.csv``: GPT-4's intent for each banking77
test query (``gpt-label``, 83.1 % equal to gold) — real teacher answers, not simulated ones.

- **Warm start**: students trained on ``train`` (gold labels standing in for recorded teacher
  answers), gate calibrated out of fold on train to the target agreement (97 %), then serving
  ``test``: coverage (share the student answers), agreement with the teacher on what it answers,
  accuracy of the whole stream (student + teacher). Tuned on train only; test is for reporting.
- **Online from cold** (Cache & Distil): the banking77 test stream in a shuffled order; the
  student starts empty, GPT-4 answers wherever it defers and every answer becomes a training pair;
  the student is retrained every ``--retrain-every`` teacher answers (gate recalibrated out of fold
  to ``--online-target``). Policies side by side: margin sampling (ridge head), query by committee
  (ridge + kNN), an OCaTS-style kNN student, and no student (every request to the teacher).
- **Latency**: ``Student.answer(text)`` on single, distinct test queries, MiniLM on onnxruntime
  beside the static embedder distilled from it (``--embedder static`` for its coverage).
- **Cascade what-if** (``--only cascade``): the static student first, the MiniLM one behind it.

Embeddings are cached under ``~/.cache/thrifty/bench_distill`` (keyed by a hash of the texts), so
a second run measures the students, not the embedder.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.distill import Featurizer, OnlineDistiller, StudentConfig
from thrifty.distill.training import fit_rows
from thrifty.semantic.base import Embedder
from thrifty.semantic.embedder import make_embedder

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CACHE = Path.home() / ".cache" / "thrifty" / "bench_distill"
#: Students compared everywhere: name -> (heads, confidence score). Declared once.
POLICIES: dict[str, tuple[tuple[str, ...], str]] = {
    "margin (ridge)": (("ridge",), "margin"),
    "committee (ridge+knn)": (("ridge", "knn"), "committee"),
    "kNN (OCaTS-style)": (("knn",), "prob"),
}


def _need(path: Path) -> Path:
    if not path.is_file():
        sys.exit(f"missing benchmark data file: {path} (see ../shared/data/README.md)")
    return path


def banking77(split: str) -> tuple[list[str], list[str]]:
    with _need(DATA / "banking77" / f"{split}.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def trec(split: str) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for line in _need(DATA / "trec" / f"{split}.txt").read_text(encoding="latin-1").splitlines():
        label, text = line.split(" ", 1)
        texts.append(text)
        labels.append(label)
    return texts, labels


def teacher_stream() -> tuple[list[str], list[str], list[str]]:
    """banking77 test queries with GPT-4's answer (the teacher) and the gold label."""
    path = _need(DATA / "distill" / "banking77_test_llm_labels.csv")
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["gpt-label"] for r in rows], [r["label"] for r in rows]


def embeddings(featurizer: Featurizer, texts: Sequence[str]) -> np.ndarray:
    """MiniLM vectors of ``texts``, from the cache when this exact list was embedded before."""
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:20]
    path = CACHE / f"{featurizer.embedder}-{digest}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    t0 = time.perf_counter()
    vectors = featurizer.embed(texts)
    print(f"  embedded {len(texts):,} texts in {time.perf_counter() - t0:.0f} s", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors, allow_pickle=False)
    return vectors


def rows_of(featurizer: Featurizer, texts: Sequence[str]) -> np.ndarray:
    return featurizer.combine(embeddings(featurizer, texts), texts)


def warm_start(featurizer: Featurizer, target: float) -> None:
    print(f"\n## Warm start (train -> test, gate calibrated on train to {target:.0%})\n")
    print(
        "| task | student | fit s | test coverage | agreement on answered | "
        "stream accuracy | student accuracy, all |"
    )
    print("|---|---|---|---|---|---|---|")
    for task, load in (("banking77", banking77), ("TREC", trec)):
        train_texts, train_y = load("train")
        test_texts, test_y = load("test")
        x_train, x_test = rows_of(featurizer, train_texts), rows_of(featurizer, test_texts)
        gold = np.asarray(test_y, dtype=object)
        for name, (heads, score) in POLICIES.items():
            config = StudentConfig(heads=heads, score=score, target_agreement=target)
            t0 = time.perf_counter()
            student = fit_rows(x_train, train_y, featurizer, config)
            fit_s = time.perf_counter() - t0
            top, conf = student.decide_rows(x_test)
            guess = np.asarray(student.labels, dtype=object)[top]
            served = conf >= student.gate.threshold
            right = guess == gold
            stream_acc = (right & served).sum() + (~served).sum()  # the teacher is gold here
            print(
                f"| {task} | {name} | {fit_s:.1f} | {served.mean():.1%} | "
                f"{right[served].mean():.1%} | {stream_acc / len(gold):.1%} | "
                f"{right.mean():.1%} |",
                flush=True,
            )


@dataclass
class OnlineResult:
    coverage: float
    coverage_2nd: float
    agreement: float
    agreement_2nd: float
    accuracy: float
    teacher_calls: int
    trainings: int
    seconds: float


def replay(
    x: np.ndarray,
    teacher: list[str],
    gold: list[str],
    featurizer: Featurizer,
    config: StudentConfig | None,
    retrain_every: int,
) -> OnlineResult:
    """One pass over the stream; ``config`` None: no student, the teacher answers everything."""
    n = len(teacher)
    served = np.zeros(n, dtype=bool)
    agree = np.zeros(n, dtype=bool)
    final: list[str] = []
    t0 = time.perf_counter()
    distiller = None
    if config is not None:
        distiller = OnlineDistiller(
            featurizer, config, retrain_every=retrain_every, min_pairs=retrain_every
        )
    for i in range(n):
        decision = distiller.decide_row(x[i]) if distiller else None
        if decision is not None and decision.answer is not None:
            served[i] = True
            agree[i] = decision.answer == teacher[i]
            final.append(decision.answer)
            continue
        final.append(teacher[i])
        if distiller is not None:
            distiller.observe("", teacher[i], decision, row=x[i])
    half = np.arange(n) >= n // 2
    return OnlineResult(
        coverage=float(served.mean()),
        coverage_2nd=float(served[half].mean()),
        agreement=float(agree[served].mean()) if served.any() else float("nan"),
        agreement_2nd=float(agree[served & half].mean()) if (served & half).any() else float("nan"),
        accuracy=float(np.mean([a == g for a, g in zip(final, gold, strict=True)])),
        teacher_calls=int((~served).sum()),
        trainings=distiller.trainings if distiller else 0,
        seconds=time.perf_counter() - t0,
    )


def dev_stream(featurizer: Featurizer, n: int = 3080) -> tuple[np.ndarray, list[str]]:
    """For tuning: ``n`` banking77 *train* queries (a fixed sample) and their gold labels,
    standing in for the teacher. The test stream is only for reporting."""
    texts, labels = banking77("train")
    pick = np.random.default_rng(1234).permutation(len(texts))[:n]
    return rows_of(featurizer, texts)[pick], [labels[i] for i in pick]


def online(
    featurizer: Featurizer,
    seeds: Sequence[int],
    target: float,
    retrain_every: int,
    stream: str,
    only: Sequence[str] | None,
) -> None:
    if stream == "test":
        texts, teacher, gold = teacher_stream()
        x_all = rows_of(featurizer, texts)
    else:
        x_all, teacher = dev_stream(featurizer)
        gold = teacher
    what = (
        "banking77 test stream, GPT-4 as teacher"
        if stream == "test"
        else "DEV: banking77 train sample, gold as teacher"
    )
    print(
        f"\n## Online from cold: {what} ({len(teacher):,} queries), retrain every "
        f"{retrain_every} teacher answers, gate target {target:.0%}\n"
    )
    print(
        "| policy | seed | coverage | coverage, 2nd half | agreement on answered | "
        "agreement, 2nd half | stream accuracy vs gold | teacher calls | trainings | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    policies: dict[str, StudentConfig | None] = {"no student (teacher only)": None}
    for name, (heads, score) in POLICIES.items():
        policies[name] = StudentConfig(heads=heads, score=score, target_agreement=target)
    if only:
        policies = {k: v for k, v in policies.items() if any(o in k for o in only)}
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(teacher))
        x = x_all[order]
        t, g = [teacher[i] for i in order], [gold[i] for i in order]
        for name, config in policies.items():
            r = replay(x, t, g, featurizer, config, retrain_every)
            print(
                f"| {name} | {seed} | {r.coverage:.1%} | {r.coverage_2nd:.1%} | "
                f"{r.agreement:.1%} | {r.agreement_2nd:.1%} | {r.accuracy:.1%} | "
                f"{r.teacher_calls:,} | {r.trainings} | {r.seconds:.0f} |",
                flush=True,
            )


def latency(featurizer: Featurizer, target: float, n: int) -> None:
    """``Student.answer(text)`` one distinct query at a time: the MiniLM student (the default)
    beside the same student on the static embedder distilled from MiniLM, interleaved (the same
    machine state for both). Wall time and this process's CPU time: on a shared machine the
    wall time mostly measures the other processes."""
    train_texts, train_y = banking77("train")
    test_texts, _ = banking77("test")
    students = {}
    for name in (featurizer.embedder, "static"):
        f = Featurizer(embedder=name)
        student = fit_rows(
            rows_of(f, train_texts), train_y, f, StudentConfig(target_agreement=target)
        )
        student.featurizer = Featurizer(embedder=name)  # a fresh LRU: no warm hits
        student.featurizer.use_embedder(_fresh_embedder(name, threads=None))
        student.answer("warm up the session")
        students[name] = student
    wall: dict[str, list[float]] = {name: [] for name in students}
    cpu: dict[str, list[float]] = {name: [] for name in students}
    head_only = []
    rows = rows_of(featurizer, test_texts[:n])
    main_student = students[featurizer.embedder]
    for i, text in enumerate(test_texts[:n]):
        for name, student in students.items():
            t0, c0 = time.perf_counter(), time.process_time()
            student.answer(text)
            wall[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append((time.process_time() - c0) * 1000)
        t0 = time.perf_counter()
        main_student.decide_rows(rows[i : i + 1])
        head_only.append((time.perf_counter() - t0) * 1000)
    print(
        f"\n## Latency: Student.answer(text), {n} distinct banking77 test queries, one at a time\n"
    )
    print("| student features | wall p50 ms | wall p90 ms | CPU p50 ms | CPU p90 ms |")
    print("|---|---|---|---|---|")
    for name in students:
        w, c = sorted(wall[name]), sorted(cpu[name])
        print(
            f"| {name} | {statistics.median(w):.2f} | {w[int(0.9 * n)]:.2f} | "
            f"{statistics.median(c):.2f} | {c[int(0.9 * n)]:.2f} |"
        )
    first, second = list(students)
    print(
        f"ratio p50 wall {statistics.median(wall[first]) / statistics.median(wall[second]):.1f}x, "
        f"CPU {statistics.median(cpu[first]) / statistics.median(cpu[second]):.1f}x; the head "
        f"and gate alone p50 {statistics.median(head_only):.3f} ms (load "
        f"{os.getloadavg()[0]:.1f}). Coverage of each: the warm-start table (--embedder)."
    )


def cascade(featurizer: Featurizer, target: float) -> None:
    """A measured what-if for the latency goal: a static-feature student answers where its own
    gate (calibrated on train to ``target``) opens, the MiniLM student behind it where its gate
    opens, the teacher elsewhere. The share answered by the static student is the share served
    in well under a millisecond (the latency table); not a feature of thrifty yet."""
    print(f"\n## Cascade what-if: static student, then MiniLM student (gates at {target:.0%})\n")
    print(
        "| task | static student (heads) | answered by static | by MiniLM | total coverage | "
        "agreement on answered |"
    )
    print("|---|---|---|---|---|---|")
    fast_f = Featurizer(embedder="static")
    for task, load in (("banking77", banking77), ("TREC", trec)):
        train_texts, train_y = load("train")
        test_texts, test_y = load("test")
        gold = np.asarray(test_y, dtype=object)
        slow = fit_rows(
            rows_of(featurizer, train_texts),
            train_y,
            featurizer,
            StudentConfig(target_agreement=target),
        )
        top, conf = slow.decide_rows(rows_of(featurizer, test_texts))
        slow_guess = np.asarray(slow.labels, dtype=object)[top]
        slow_open = conf >= slow.gate.threshold
        for name in ("margin (ridge)", "committee (ridge+knn)"):
            heads, score = POLICIES[name]
            config = StudentConfig(heads=heads, score=score, target_agreement=target)
            fast = fit_rows(rows_of(fast_f, train_texts), train_y, fast_f, config)
            ftop, fconf = fast.decide_rows(rows_of(fast_f, test_texts))
            fast_guess = np.asarray(fast.labels, dtype=object)[ftop]
            fast_open = fconf >= fast.gate.threshold
            by_slow = ~fast_open & slow_open
            guess = np.where(fast_open, fast_guess, slow_guess)
            answered = fast_open | by_slow
            print(
                f"| {task} | {name} | {fast_open.mean():.1%} | {by_slow.mean():.1%} | "
                f"{answered.mean():.1%} | {(guess == gold)[answered].mean():.1%} |",
                flush=True,
            )


def _fresh_embedder(name: str, *, threads: int | None) -> Embedder:
    options: dict[str, Any] = {"cache_size": 0}
    if name == "minilm":
        options["threads"] = threads
    return make_embedder(name, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("warm", "online", "latency", "cascade"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--target", type=float, default=0.97, help="warm start gate target")
    parser.add_argument(
        "--online-target",
        type=float,
        default=0.90,
        help="online gate target (0.90 chosen on the dev stream)",
    )
    parser.add_argument("--retrain-every", type=int, default=50)
    parser.add_argument("--latency-n", type=int, default=300)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument(
        "--stream",
        choices=("test", "dev"),
        default="test",
        help="online stream: test (report) or dev (banking77 train, for tuning)",
    )
    parser.add_argument(
        "--policies",
        nargs="+",
        help="online: only policies whose name has one of these words (e.g. margin committee)",
    )
    args = parser.parse_args()
    featurizer = Featurizer(embedder=args.embedder)
    if args.only in (None, "warm"):
        warm_start(featurizer, args.target)
    if args.only in (None, "online"):
        online(
            featurizer,
            args.seeds,
            args.online_target,
            args.retrain_every,
            args.stream,
            args.policies,
        )
    if args.only in (None, "latency"):
        latency(featurizer, args.target, args.latency_n)
    if args.only == "cascade":
        cascade(featurizer, args.target)


if __name__ == "__main__":
    main()
