"""Router: cost against quality on real model outcomes (MMLU, GSM8K: Mixtral vs GPT-4), and on
banking77 (or TREC) with classifiers standing in for models.

    python benchmarks/bench_router.py --task mmlu gsm8k  # RouteLLM's data (_router_outcomes.py)
    python benchmarks/bench_router.py --task mmlu gsm8k --embedders minilm static --cv-folds 0
    python benchmarks/bench_router.py --task mmlu --stack --embedders static --cv-folds 3
    python benchmarks/bench_router.py                    # banking77
    python benchmarks/bench_router.py --task trec
    python benchmarks/bench_router.py --per-class 5 20   # other cheap models
    python benchmarks/bench_router.py --per-class 30 --write-outcomes benchmarks/out/outcomes
    thrifty route train --data benchmarks/out/outcomes/banking77_cheap30_train.jsonl \
        -o benchmarks/out/router.npz --kind knn --target-strong-share 0.4
    thrifty route eval --router benchmarks/out/router.npz \
        --data benchmarks/out/outcomes/banking77_cheap30_test.jsonl

Two REAL classifiers, both measured on the task's test split (accuracy is the quality):

- cheap: TF-IDF (words and bigrams) + logistic regression fitted on a small slice of train
  (``--per-class`` examples per label);
- strong: logistic regression on all-MiniLM-L6-v2 embeddings (thrifty's local embedder) fitted on
  all of train.

The routers are thrifty's (``thrifty.routing.train_router``), both on the prompt's MiniLM
embedding: ``logistic`` (logistic regression) and ``knn`` (similarity-weighted share of good
cheap answers among the nearest recorded prompts). They are trained on train-split outcomes (was
the cheap model right? measured on the train rows outside the cheap model's slice), their
thresholds calibrated on a held-out quarter of them (strong-model outcomes there come from 5-fold
cross-validation, never from rows it was fitted on). Everything is then evaluated on test: the
learned routers, random routing (mean of 20 seeds) and rules alone (thrifty's rules: "prompts of
at least N tokens go to the strong model", N swept), at strong shares 0…100 %, plus the oracle
(strong first where only the strong model is right) as a ceiling. The learned curves' points are
operating points at each share; the calibrated thresholds (chosen on train outcomes only) are
reported apart. Cost is relative to strong-only, at gpt-4o-mini vs gpt-4o list prices from thrifty's
price table standing in for cheap vs strong (the same tokens per request for both).
Plot: ``benchmarks/out/router_<task>.png``; JSON: ``benchmarks/out/router_<task>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _router_outcomes import decision_ms
from _router_outcomes import plot as outcomes_plot
from _router_outcomes import report as outcomes_report
from _router_outcomes import run as outcomes_run
from _routing_data import EMBEDDERS
from _semantic_data import OUT, data_file, embed_cached, load_banking77
from thrifty.accounting.prices import PriceTable
from thrifty.routing.calibration import evaluate, threshold_for_share
from thrifty.routing.features import features_of
from thrifty.routing.router import train_router
from thrifty.routing.rules import Condition, Rule, first_match

SHARES = [i / 20 for i in range(21)]
KINDS = ("knn", "logistic")


def load_trec(split: str) -> list[tuple[str, str]]:
    lines = data_file(f"trec/{split}.txt").read_text(encoding="latin-1").splitlines()
    return [(line[2:].strip(), line[0]) for line in lines if line.strip()]


LOADERS = {"banking77": load_banking77, "trec": load_trec}
#: Tasks with recorded outcomes of two real models (``_router_outcomes.py``).
OUTCOME_TASKS = ("mmlu", "gsm8k")


def slice_per_class(labels: list[str], per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for label in sorted(set(labels)):
        rows = [i for i, y in enumerate(labels) if y == label]
        picked += list(rng.choice(rows, size=min(per_class, len(rows)), replace=False))
    return np.array(sorted(picked))


def quality_at(strong: np.ndarray, cheap_ok: np.ndarray, strong_ok: np.ndarray) -> float:
    return float(np.where(strong, strong_ok, cheap_ok).mean())


def oracle_at(share: float, cheap_ok: np.ndarray, strong_ok: np.ndarray) -> float:
    """Strong calls go first where only the strong model is right, never where only the cheap
    one is (until nothing else is left)."""
    n, k = len(cheap_ok), round(share * len(cheap_ok))
    gain = int(((cheap_ok == 0) & (strong_ok == 1)).sum())
    loss = int(((cheap_ok == 1) & (strong_ok == 0)).sum())
    return float((cheap_ok.sum() + min(k, gain) - max(0, k - (n - loss))) / n)


def run_cheap(args: argparse.Namespace, per_class: int, data: dict) -> dict:
    """One cheap model (``per_class`` examples per label) against the shared strong model."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    e_train, e_test = data["e_train"], data["e_test"]
    strong_ok_train, strong_ok_test = data["strong_ok_train"], data["strong_ok_test"]
    sliced = slice_per_class(list(y_train), per_class, args.seed)
    rest = np.setdiff1d(np.arange(len(x_train)), sliced)
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    cheap = LogisticRegression(C=10.0, max_iter=2000).fit(
        tfidf.fit_transform([x_train[i] for i in sliced]), y_train[sliced]
    )
    cheap_ok_rest = (
        cheap.predict(tfidf.transform([x_train[i] for i in rest])) == y_train[rest]
    ).astype(float)
    cheap_ok_test = (cheap.predict(tfidf.transform(x_test)) == y_test).astype(float)
    strong_only, cheap_only = float(strong_ok_test.mean()), float(cheap_ok_test.mean())
    if args.write_outcomes:  # the same outcomes as files for `thrifty route train / eval`
        for split, rows, cheap_ok, strong_ok in (
            ("train", [x_train[i] for i in rest], cheap_ok_rest, strong_ok_train[rest]),
            ("test", x_test, cheap_ok_test, strong_ok_test),
        ):
            path = args.write_outcomes / f"{args.task}_cheap{per_class}_{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "".join(
                    json.dumps({"prompt": t, "cheap_ok": bool(c), "strong_ok": bool(g)}) + "\n"
                    for t, c, g in zip(rows, cheap_ok, strong_ok, strict=True)
                )
            )
    prices = PriceTable({})
    ratio = prices.cost("gpt-4o-mini", 1000, 200) / prices.cost("gpt-4o", 1000, 200)

    def rel_cost(share: float) -> float:
        return share + (1 - share) * ratio

    # --- thrifty's learned routers, trained and calibrated on train outcomes only
    routers, p_test, calibrated = {}, {}, {}
    for kind in KINDS:
        started = time.perf_counter()
        router = train_router(
            e_train[rest],
            cheap_ok_rest,
            strong_ok_train[rest],
            kind=kind,
            target_strong_share=args.target_share,
            seed=args.seed,
        )
        seconds = time.perf_counter() - started
        routers[kind] = router
        p_test[kind] = router.probability(e_test)
        calibrated[kind] = {"fit_seconds": round(seconds, 2), "info": router.info}
        for label, threshold in (
            (f"target_share_{args.target_share}", router.threshold),
            (
                f"target_quality_{args.target_quality}",
                router.retarget(quality=args.target_quality).threshold,
            ),
        ):
            point = evaluate(p_test[kind], cheap_ok_test, strong_ok_test, threshold)
            calibrated[kind][label] = {
                "strong_share": round(point.strong_share, 4),
                "relative_quality": round(point.quality / strong_only, 4),
                "accuracy": round(point.quality, 4),
                "relative_cost": round(rel_cost(point.strong_share), 4),
            }

    latency = {kind: decision_ms(routers[kind], data["x_test"][:300]) for kind in KINDS}

    def learned(kind: str, share: float) -> float:
        threshold = threshold_for_share(p_test[kind], share)  # the operating point at `share`
        return evaluate(p_test[kind], cheap_ok_test, strong_ok_test, threshold).quality

    rng = np.random.default_rng(args.seed)

    def random_routing(share: float) -> float:
        runs = [
            quality_at(rng.random(len(y_test)) < share, cheap_ok_test, strong_ok_test)
            for _ in range(20)
        ]
        return float(np.mean(runs))

    rule_points = [(0.0, cheap_only)]
    for n in sorted(set(data["tokens"].tolist()), reverse=True):
        rules = [Rule("strong", Condition(min_prompt_tokens=n))]
        to_strong = np.array([first_match(rules, f) is not None for f in data["features"]])
        rule_points.append(
            (float(to_strong.mean()), quality_at(to_strong, cheap_ok_test, strong_ok_test))
        )

    def rules_alone(share: float) -> tuple[float, float]:
        """The length rule with the largest strong share not above ``share``."""
        return max((r for r in rule_points if r[0] <= share + 1e-9), key=lambda r: r[0])

    curve = []
    for share in SHARES:
        rs, rq = rules_alone(share)
        row = {"strong_share": share, "relative_cost": round(rel_cost(share), 4)}
        row.update({kind: round(learned(kind, share) / strong_only, 4) for kind in KINDS})
        row.update(
            {
                "random": round(random_routing(share) / strong_only, 4),
                "rules_share": round(rs, 4),
                "rules": round(rq / strong_only, 4),
                "oracle": round(oracle_at(share, cheap_ok_test, strong_ok_test) / strong_only, 4),
            }
        )
        curve.append(row)
    return {
        "cheap": f"TF-IDF(1-2 grams)+logistic regression on {len(sliced)} train rows "
        f"({per_class} per label)",
        "cheap_accuracy": round(cheap_only, 4),
        "router_outcomes": len(rest),
        "price_ratio_cheap_over_strong": round(ratio, 4),
        "routers": calibrated,
        "decision_ms": latency,
        "curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--task", choices=[*LOADERS, *OUTCOME_TASKS], nargs="+", default=["banking77"]
    )
    parser.add_argument("--per-class", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--target-share", type=float, default=0.4)
    parser.add_argument("--target-quality", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cv-folds",
        type=int,
        default=5,
        help="MMLU/GSM8K: folds of the cross-validation on dev (0: none).",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        default=None,
        help="MMLU/GSM8K: only these router kinds (default: all of _router_outcomes.CONFIGS).",
    )
    parser.add_argument(
        "--embedders",
        nargs="+",
        choices=EMBEDDERS,
        default=["minilm"],
        help="MMLU/GSM8K: the routers' feature embedders, each measured in the same run "
        "(quality and decision time side by side).",
    )
    parser.add_argument(
        "--stack",
        action="store_true",
        help="MMLU: the stacked router of _router_stack.py (grouped head + kNN difficulty + "
        "prompt difficulty features, gradient-boosted), dev CV (--cv-folds) then test.",
    )
    parser.add_argument(
        "--write-outcomes",
        type=Path,
        default=None,
        help="Also write the outcomes as JSONL files here (for the CLI).",
    )
    args = parser.parse_args()
    outcome_tasks = [t for t in args.task if t in OUTCOME_TASKS]
    if args.stack:
        from _router_stack import run as stack_run

        for embedder in args.embedders:
            stacked = stack_run(embedder, args.cv_folds)
            OUT.mkdir(parents=True, exist_ok=True)
            (OUT / f"router_mmlu_stack_{embedder}.json").write_text(json.dumps(stacked, indent=2))
            print(f"\n### MMLU stacked router ({embedder} embeddings)")
            print(f"dev {args.cv_folds}-fold CV, GPT-4 share at 95 %: {stacked['dev_cv']}")
            for name, info in stacked["test"].items():
                print(
                    f"- test {name}: {info['share_at_95']:.0%} GPT-4 calls at 95 %; "
                    f"{info['accuracy_at_40']:.1%} of GPT-4 at 40 %"
                )
        return
    if outcome_tasks:
        results = [
            outcomes_run(t, cv_folds=args.cv_folds, kinds=args.kinds, embedder=e)
            for t in outcome_tasks
            for e in args.embedders
        ]
        OUT.mkdir(parents=True, exist_ok=True)
        name = "_".join(outcome_tasks + [e for e in args.embedders if e != "minilm"])
        (OUT / f"router_{name}.json").write_text(json.dumps(results, indent=2))
        for result in results:
            outcomes_report(result)
        outcomes_plot(results, OUT / f"router_{name}.png")
        return
    args.task = args.task[0]
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    train, test = LOADERS[args.task]("train"), LOADERS[args.task]("test")
    data: dict = {
        "x_train": [t for t, _ in train],
        "y_train": np.array([y for _, y in train]),
        "x_test": [t for t, _ in test],
        "y_test": np.array([y for _, y in test]),
    }
    data["e_train"] = embed_cached(f"{args.task}-train", data["x_train"])
    data["e_test"] = embed_cached(f"{args.task}-test", data["x_test"])
    data["features"] = [features_of({"prompt": t}) for t in data["x_test"]]
    data["tokens"] = np.array([f.prompt_tokens for f in data["features"]])

    # --- the strong model, real and measured; on train, its outcomes come from 5-fold CV
    started = time.perf_counter()
    strong = LogisticRegression(C=10.0, max_iter=2000).fit(data["e_train"], data["y_train"])
    strong_fit_s = time.perf_counter() - started
    data["strong_ok_test"] = (strong.predict(data["e_test"]) == data["y_test"]).astype(float)
    data["strong_ok_train"] = (
        cross_val_predict(
            LogisticRegression(C=10.0, max_iter=2000), data["e_train"], data["y_train"], cv=5
        )
        == data["y_train"]
    ).astype(float)
    result = {
        "task": args.task,
        "train_rows": len(train),
        "test_rows": len(test),
        "strong": f"logistic regression on all-MiniLM-L6-v2 embeddings, {len(train)} train rows",
        "strong_accuracy": round(float(data["strong_ok_test"].mean()), 4),
        "strong_fit_seconds": round(strong_fit_s, 2),
        "cheap_models": {str(k): run_cheap(args, k, data) for k in args.per_class},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"router_{args.task}.json").write_text(json.dumps(result, indent=2))
    plot(result, OUT / f"router_{args.task}.png")
    for run in result["cheap_models"].values():
        print(
            f"\n### cheap: {run['cheap']} — accuracy {run['cheap_accuracy']:.1%}; strong: "
            f"{result['strong']} — accuracy {result['strong_accuracy']:.1%}"
        )
        for kind, info in run["routers"].items():
            print(
                f"- {kind} router: {json.dumps(info)}; decision ms "
                f"{json.dumps(run['decision_ms'][kind])}"
            )
        print(
            "\n| strong share | cost vs strong-only | knn router | logistic router | random "
            "| rules alone (share) | oracle |"
        )
        print("|---|---|---|---|---|---|---|")
        for c in run["curve"]:
            print(
                f"| {c['strong_share']:.0%} | {c['relative_cost']:.0%} | {c['knn']:.1%} | "
                f"{c['logistic']:.1%} | {c['random']:.1%} | {c['rules']:.1%} "
                f"({c['rules_share']:.0%}) | {c['oracle']:.1%} |"
            )


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["cheap_models"]
    fig, axes = plt.subplots(1, len(runs), figsize=(6.0 * len(runs), 4.4), squeeze=False)
    for ax, (per_class, run) in zip(axes[0], runs.items(), strict=True):
        curve = run["curve"]
        share = [c["strong_share"] for c in curve]
        ax.plot(share, [c["knn"] for c in curve], "o-", label="learned router, knn (thrifty)")
        ax.plot(
            share, [c["logistic"] for c in curve], "^-", label="learned router, logistic (thrifty)"
        )
        ax.plot(share, [c["random"] for c in curve], "s--", label="random routing")
        ax.step(
            [c["rules_share"] for c in curve],
            [c["rules"] for c in curve],
            where="post",
            label="rules alone (prompt length)",
        )
        ax.plot(share, [c["oracle"] for c in curve], ":", color="grey", label="oracle")
        ax.axhline(0.95, color="red", lw=0.8)
        ax.axvline(0.40, color="red", lw=0.8)
        ax.set_xlabel("share of requests sent to the strong model")
        ax.set_ylabel("accuracy relative to strong-only")
        ax.set_title(
            f"{result['task']}: cheap ({per_class}/label) {run['cheap_accuracy']:.1%}, "
            f"strong {result['strong_accuracy']:.1%}",
            fontsize=10,
        )
        ax.legend(loc="lower right", fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
