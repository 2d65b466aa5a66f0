"""``bench_router.py --task mmlu|gsm8k``: routers on real model outcomes (RouteLLM's data).

Mixtral-8x7B-Instruct (cheap) or GPT-4-1106 (strong) answers each prompt; the routers decide which,
from the prompt alone, or (GSM8K, a cascade) after reading Mixtral's own answer. Everything learned
sees the dev split only (sha256 of the prompt, first byte < 154); figures are on test.

Prices used (per million tokens, in/out): GPT-4-1106 $10/$30, Mixtral-8x7B $0.6/$0.6. Tokens:
the prompt (tiktoken cl100k) in; out, the recorded response (GSM8K) or one token (MMLU answers a
letter).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from _routing_data import embeddings, load_rows
from thrifty.accounting.tokens import count_text
from thrifty.routing.answer_signals import answer_features, arithmetic_errors, hedges, marked
from thrifty.routing.calibration import (
    evaluate,
    routing_curve,
    threshold_for_quality,
    threshold_for_share,
)
from thrifty.routing.route import RouteModel
from thrifty.routing.router import LearnedRouter, train_router
from thrifty.routing.scorers import LogisticScorer

PRICES = {"strong": (10.0, 30.0), "cheap": (0.6, 0.6)}  # $ per million tokens, in / out
GRID = np.linspace(0.0, 1.0, 101)
#: RouteLLM's published savings at 95 % of GPT-4's quality (cost, against GPT-4 alone; with
#: Mixtral 17-50x cheaper, close to the GPT-4 call reduction): best router on each benchmark.
ROUTELLM = {"mmlu": 0.45, "gsm8k": 0.35}
#: Router configurations compared on dev (kind, inputs, label); the current default is first.
CONFIGS = [
    ("knn", "embedding", "cheap_ok"),
    ("logistic", "embedding+prompt", "cheap_ok"),
    ("logistic", "embedding+prompt", "no_gain"),
    ("knn", "embedding", "no_gain"),
    ("mlp", "embedding+prompt", "no_gain"),
    ("mf", "embedding+prompt", "no_gain"),
    ("grouped", "embedding+prompt", "no_gain"),
    ("stack", "embedding+prompt+difficulty", "no_gain"),
]
#: The stack head's configuration name (its decision time is always measured).
STACK = "stack embedding+prompt+difficulty no_gain"
#: Configurations also measured by k-fold cross-validation on dev (``dev_cv``), beside the
#: per-subject baseline: the choice between them, and the strong share the router is set to.
CV_CONFIGS = [("mf", "embedding+prompt", "no_gain"), ("grouped", "embedding+prompt", "no_gain")]


def quality_curve(score: np.ndarray, cheap: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """Accuracy at each strong share of :data:`GRID`, the lowest scores going strong first."""
    return np.array(
        [evaluate(score, cheap, strong, threshold_for_share(score, s)).quality for s in GRID]
    )


def share_for(curve: np.ndarray, target: float) -> float:
    """The least strong share of :data:`GRID` whose accuracy reaches ``target``."""
    reached = np.nonzero(curve >= target - 1e-12)[0]
    return float(GRID[reached[0]]) if len(reached) else float("nan")


def oracle_curve(cheap: np.ndarray, strong: np.ndarray) -> np.ndarray:
    gain = (strong == 1) & (cheap == 0)
    loss = (strong == 0) & (cheap == 1)
    jitter = np.random.default_rng(1).random(len(cheap)) * 1e-3  # no ties: one row at a time
    return quality_curve(np.where(gain, 0.0, np.where(loss, 0.99, 0.5)) + jitter, cheap, strong)


def per_subject_score(rows: list[dict], dev: list[int], test: list[int]) -> np.ndarray:
    """Higher where Mixtral's dev accuracy in the subject is closer to GPT-4's (the gap on dev
    decides; ties broken at random)."""
    gap: dict[str, list[float]] = {}
    for i in dev:
        gap.setdefault(rows[i]["subject"], []).append(
            float(rows[i]["gpt4_correct"]) - float(rows[i]["mixtral_correct"])
        )
    mean = {k: float(np.mean(v)) for k, v in gap.items()}
    jitter = np.random.default_rng(0).random(len(test)) * 1e-6
    gaps = np.array([mean.get(rows[i]["subject"], 0.0) for i in test])
    return np.clip((1.0 - gaps) / 2 + jitter, 0.0, 1.0)  # in [0, 1], as a router's p


def groups_of(rows: list[dict], idx: list[int] | np.ndarray) -> list[str | None] | None:
    """MMLU's subjects (what the ``grouped`` head learns from); None where the data has none."""
    named = [rows[i].get("subject") for i in idx]
    return None if any(g is None for g in named) else named


def dev_cv(
    task: str,
    rows: list[dict],
    vectors: np.ndarray,
    dev: list[int],
    folds: int,
    configs: list[tuple[str, str, str]] = CV_CONFIGS,
) -> dict[str, Any]:
    """``folds``-fold cross-validation on dev alone: each fold's router (and the per-subject
    table) fitted on the other folds, scored on it; the pooled out-of-fold scores (ranks within
    each fold, so folds pool fairly) give a dev curve and the least strong share reaching 95 % of
    GPT-4's dev accuracy, which sets the router's operating point without looking at test."""
    idx = np.asarray(dev)
    col = {m: np.array([float(rows[i][f"{m}_correct"]) for i in idx]) for m in ("mixtral", "gpt4")}
    texts = [rows[i]["prompt"] for i in idx]
    part = np.random.default_rng(0).permutation(len(idx)) % folds
    names = [f"{k} {i} {lab}" for k, i, lab in configs]
    if task == "mmlu":
        names.insert(0, "per-subject")
    oof = {name: np.zeros(len(idx)) for name in names}
    per_fold: dict[str, list[float]] = {name: [] for name in names}
    for f in range(folds):
        inside, out = np.nonzero(part != f)[0], np.nonzero(part == f)[0]
        scores: dict[str, np.ndarray] = {}
        if task == "mmlu":
            scores["per-subject"] = per_subject_score(rows, list(idx[inside]), list(idx[out]))
        for (kind, inputs, label), name in zip(configs, names[-len(configs) :], strict=True):
            router = train_router(
                vectors[idx[inside]],
                col["mixtral"][inside],
                col["gpt4"][inside],
                texts=[texts[i] for i in inside],
                groups=groups_of(rows, idx[inside]),
                kind=kind,
                inputs=inputs,
                label=label,
            )
            scores[name] = router.probability(vectors[idx[out]], [texts[i] for i in out])
        for name, score in scores.items():
            oof[name][out] = (np.argsort(np.argsort(score)) + 0.5) / len(out)
            curve = quality_curve(score, col["mixtral"][out], col["gpt4"][out])
            per_fold[name].append(share_for(curve, 0.95 * float(col["gpt4"][out].mean())))
    target = 0.95 * float(col["gpt4"].mean())
    out_cv: dict[str, Any] = {"folds": folds, "rows": len(idx), "routers": {}}
    for name in names:
        curve = quality_curve(oof[name], col["mixtral"], col["gpt4"])
        out_cv["routers"][name] = {
            "pooled_share_at_95": share_for(curve, target),
            "fold_shares_at_95": per_fold[name],
            "curve": [round(float(v) / float(col["gpt4"].mean()), 4) for v in curve],
        }
    return out_cv


def dollars(rows: list[dict], idx: list[int], task: str) -> tuple[np.ndarray, np.ndarray]:
    """$ per request for (cheap, strong) at :data:`PRICES`."""
    cost = np.zeros((len(idx), 2))
    for j, i in enumerate(idx):
        tin = count_text(rows[i]["prompt"])
        for m, (model, key) in enumerate((("cheap", "mixtral"), ("strong", "gpt4"))):
            tout = count_text(rows[i][f"{key}_response"]) if task == "gsm8k" else 1
            pin, pout = PRICES[model]
            cost[j, m] = (tin * pin + tout * pout) / 1e6
    return cost[:, 0], cost[:, 1]


def decision_ms(router: LearnedRouter, texts: list[str]) -> dict[str, float]:
    """Milliseconds per ``RouteModel.decide`` (features, MiniLM embedding, score), one prompt
    at a time as the gateway does it; every prompt distinct, so the embedder's LRU never hits."""
    route = RouteModel("thrifty/auto", ["cheap", "strong"], router=router)
    route.decide({"prompt": "warm up"})
    times = []
    for text in texts:
        started = time.perf_counter()
        route.decide({"messages": [{"role": "user", "content": text}]})
        times.append((time.perf_counter() - started) * 1000)
    return {
        "p50": round(float(np.median(times)), 2),
        "p99": round(float(np.percentile(times, 99)), 2),
    }


def held_share(router: LearnedRouter, target: float = 0.95) -> float:
    """Strong share at ``target`` relative quality on the router's own held-out dev part."""
    ok = [c.strong_share for c in router.curve if c.relative_quality >= target]
    return min(ok) if ok else 1.0


def held_area(router: LearnedRouter) -> float:
    """Mean relative quality over the held-out dev curve (strong shares 0-100 %): the choice
    among routers, steadier on a few hundred rows than the single share at 95 %."""
    return float(np.mean([c.relative_quality for c in router.curve]))


def scoring_ms(router: LearnedRouter, vectors: np.ndarray, texts: list[str]) -> float:
    """p50 milliseconds of the router alone (prompt features + head), one prompt at a time,
    given the embedding (which a semantic cache in front computes anyway)."""
    times = []
    for i, text in enumerate(texts):
        started = time.perf_counter()
        router.probability(vectors[i : i + 1], [text])
        times.append((time.perf_counter() - started) * 1000)
    return round(float(np.median(times)), 3)


def cascade_rows(rows: list[dict], idx: list[int]) -> np.ndarray:
    return np.array([answer_features(rows[i]["mixtral_response"]) for i in idx], dtype=np.float32)


def cascade_results(
    rows: list[dict], dev: list[int], test: list[int], cheap: np.ndarray, strong: np.ndarray
) -> dict[str, Any]:
    """Answer-based escalation on GSM8K: rules on Mixtral's answer, and a logistic check on its
    answer features fitted on dev (escalate the lowest)."""
    answers = [rows[i]["mixtral_response"] for i in test]
    rules = {
        "unmarked (no '####' / stated answer)": np.array([not marked(a) for a in answers]),
        "arithmetic error": np.array([arithmetic_errors(a)[1] > 0 for a in answers]),
        "hedging": np.array([hedges(a) > 0 for a in answers]),
    }
    rules["any of the three"] = np.any(np.stack(list(rules.values())), axis=0)
    out: dict[str, Any] = {"rules": {}}
    for name, escalate in rules.items():
        q = float(np.where(escalate, strong, cheap).mean())
        out["rules"][name] = {"strong_share": round(float(escalate.mean()), 4), "accuracy": q}
    x_dev = cascade_rows(rows, dev)
    y_dev = np.array([float(rows[i]["mixtral_correct"]) for i in dev])
    cut = int(len(dev) * 0.75)
    scorer, _ = LogisticScorer.fit(x_dev[:cut], y_dev[:cut], x_dev[cut:], y_dev[cut:])
    out["score"] = scorer.score(cascade_rows(rows, test))
    # Its threshold calibrated on all of dev for 95 % of GPT-4 (8 weights barely overfit; the
    # held-out quarter alone is 200 rows), applied to test.
    s_dev = np.array([float(rows[i]["gpt4_correct"]) for i in dev])
    curve = routing_curve(scorer.score(x_dev), y_dev, s_dev)
    threshold = threshold_for_quality(curve, 0.95).threshold
    point = evaluate(out["score"], cheap, strong, threshold)
    out["calibrated_on_dev"] = {
        "strong_share": round(point.strong_share, 4),
        "relative_quality": round(point.quality / float(strong.mean()), 4),
    }
    return out


def run(
    task: str,
    latency_prompts: int = 200,
    cv_folds: int = 5,
    kinds: list[str] | None = None,
    embedder: str = "minilm",
) -> dict[str, Any]:
    """Every router and baseline on ``task``'s test split, the routers reading ``embedder``'s
    vectors (``minilm`` or ``static``); see the module docstring."""
    rows = load_rows(task)
    vectors = embeddings(task, rows, embedder)
    dev = [i for i, r in enumerate(rows) if r["split"] == "dev"]
    test = [i for i, r in enumerate(rows) if r["split"] == "test"]
    col = {m: np.array([float(r[f"{m}_correct"]) for r in rows]) for m in ("mixtral", "gpt4")}
    texts = [r["prompt"] for r in rows]
    cheap, strong = col["mixtral"][test], col["gpt4"][test]
    best_q = float(strong.mean())
    target = 0.95 * best_q
    c_cost, s_cost = dollars(rows, test, task)
    curves: dict[str, np.ndarray] = {
        "random": cheap.mean() + GRID * (best_q - cheap.mean()),
        "oracle": oracle_curve(cheap, strong),
    }
    if task == "mmlu":
        curves["per-subject"] = quality_curve(per_subject_score(rows, dev, test), cheap, strong)
    routers: dict[str, dict[str, Any]] = {}
    fitted: dict[str, LearnedRouter] = {}
    configs = [c for c in CONFIGS if kinds is None or c[0] in kinds]
    for kind, inputs, label in configs:
        name = f"{kind} {inputs} {label}"
        started = time.perf_counter()
        router = train_router(
            vectors[dev],
            col["mixtral"][dev],
            col["gpt4"][dev],
            texts=[texts[i] for i in dev],
            groups=groups_of(rows, dev),
            embedder=embedder,
            kind=kind,
            inputs=inputs,
            label=label,
            target_quality=0.95,
        )
        fit_s = time.perf_counter() - started
        p = router.probability(vectors[test], [texts[i] for i in test])
        curves[name] = quality_curve(p, cheap, strong)
        calibrated = evaluate(p, cheap, strong, router.threshold)
        routers[name] = {
            "dev_heldout_area": round(held_area(router), 4),
            "dev_heldout_share_at_95": round(held_share(router), 4),
            "fit_s": round(fit_s, 1),
            "calibrated_on_dev": {
                "strong_share": round(calibrated.strong_share, 4),
                "relative_quality": round(calibrated.quality / best_q, 4),
            },
            **{k: router.info[k] for k in ("hidden", "rank", "k", "l2") if k in router.info},
        }
        fitted[name] = router
    chosen = max(routers, key=lambda n: routers[n]["dev_heldout_area"])
    cv_configs = [c for c in CV_CONFIGS if kinds is None or c[0] in kinds]
    cv = dev_cv(task, rows, vectors, dev, cv_folds, cv_configs) if cv_folds > 1 else None
    if cv is not None:  # the operating point set by the dev-CV share, applied to test
        for name, info in cv["routers"].items():
            if name in fitted:
                point = evaluate(
                    fitted[name].probability(vectors[test], [texts[i] for i in test]),
                    cheap,
                    strong,
                    fitted[name].retarget(strong_share=info["pooled_share_at_95"]).threshold,
                )
                routers[name]["at_dev_cv_share"] = {
                    "strong_share": round(point.strong_share, 4),
                    "relative_quality": round(point.quality / best_q, 4),
                }
    if task == "gsm8k":
        cascade = cascade_results(rows, dev, test, cheap, strong)
        curves["cascade (answer check)"] = quality_curve(cascade.pop("score"), cheap, strong)
        routers["cascade (answer check)"] = {"calibrated_on_dev": cascade["calibrated_on_dev"]}
    summary: dict[str, dict[str, float | None]] = {}
    for name, curve in curves.items():
        share = share_for(curve, target)
        summary[name] = {"strong_share_at_95": share, "accuracy_at_40": float(curve[40])}
        if name.startswith("cascade"):
            cost = c_cost.sum() + share * s_cost.sum()  # the cheap answer is always paid
        else:
            cost = share * s_cost.sum() + (1 - share) * c_cost.sum()
        summary[name]["cost_vs_gpt4"] = float(cost / s_cost.sum()) if share == share else None
    return {
        "task": task,
        "embedder": embedder,
        "dev_rows": len(dev),
        "test_rows": len(test),
        "accuracy": {"mixtral": float(cheap.mean()), "gpt4": best_q, "target_95": target},
        "dollars_per_1k_requests": {
            "mixtral": round(float(c_cost.mean() * 1000), 4),
            "gpt4": round(float(s_cost.mean() * 1000), 4),
        },
        "routers": routers,
        "chosen_on_dev": chosen,
        "dev_cv": cv,
        "decision_ms": {
            name: {
                **decision_ms(fitted[name], [texts[i] for i in test[:latency_prompts]]),
                "scoring_p50": scoring_ms(
                    fitted[name], vectors[test], [texts[i] for i in test[:latency_prompts]]
                ),
            }
            for name in dict.fromkeys([chosen, "grouped embedding+prompt no_gain", STACK])
            if name in fitted
        },
        "summary": summary,
        "routellm_published_saving": ROUTELLM[task],
        "cascade_rules": cascade["rules"] if task == "gsm8k" else None,
        "curves": {k: [round(float(v), 4) for v in c] for k, c in curves.items()},
    }


def report(result: dict[str, Any]) -> None:
    acc = result["accuracy"]
    print(
        f"\n### {result['task']} ({result['embedder']} embeddings): test {result['test_rows']} "
        f"prompts (dev {result['dev_rows']}); "
        f"Mixtral {acc['mixtral']:.1%}, GPT-4 {acc['gpt4']:.1%}, 95 % of GPT-4 = "
        f"{acc['target_95']:.1%}; $/1k requests: {result['dollars_per_1k_requests']}"
    )
    print(f"chosen on dev: {result['chosen_on_dev']}; decision ms {result['decision_ms']}")
    print("\n| router | GPT-4 share at 95 % | fewer GPT-4 calls | cost vs GPT-4 | acc at 40 % |")
    print("|---|---|---|---|---|")
    for name, s in result["summary"].items():
        share = s["strong_share_at_95"]
        cost = "n/a" if s["cost_vs_gpt4"] is None else f"{s['cost_vs_gpt4']:.1%}"
        print(
            f"| {name} | {share:.0%} | {1 - share:.0%} | {cost} | "
            f"{s['accuracy_at_40'] / acc['gpt4']:.1%} |"
        )
    print(
        f"| RouteLLM published (cost saving) | | {result['routellm_published_saving']:.0%} | "
        f"{1 - result['routellm_published_saving']:.0%} | |"
    )
    for name, info in result["routers"].items():
        print(f"- {name}: {info}")
    if result.get("dev_cv"):
        cv = result["dev_cv"]
        print(f"\ndev {cv['folds']}-fold CV ({cv['rows']} dev prompts), GPT-4 share at 95 %:")
        for name, info in cv["routers"].items():
            folds = ", ".join(f"{s:.0%}" for s in info["fold_shares_at_95"])
            print(f"- {name}: pooled {info['pooled_share_at_95']:.0%} (folds {folds})")
    if result["cascade_rules"]:
        for name, info in result["cascade_rules"].items():
            print(
                f"- cascade rule {name}: GPT-4 share {info['strong_share']:.1%}, accuracy "
                f"{info['accuracy'] / acc['gpt4']:.1%} of GPT-4"
            )


def plot(results: list[dict[str, Any]], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.6), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        best = result["accuracy"]["gpt4"]
        shown = [
            "random",
            "oracle",
            "per-subject",
            "knn embedding cheap_ok",
            result["chosen_on_dev"],
            "mf embedding+prompt no_gain",
            "grouped embedding+prompt no_gain",
        ]
        shown += [k for k in result["curves"] if k.startswith("cascade")]
        for name in dict.fromkeys(shown):
            if name in result["curves"]:
                ax.plot(GRID, np.array(result["curves"][name]) / best, label=name)
        ax.axhline(0.95, color="red", lw=0.8)
        saving = result["routellm_published_saving"]
        ax.axvline(1 - saving, color="grey", ls=":", lw=0.8, label=f"RouteLLM ({saving:.0%} saved)")
        ax.set_xlabel("share of GPT-4 calls (cost ~ proportional: Mixtral is 17-50x cheaper)")
        ax.set_ylabel("accuracy relative to GPT-4 alone")
        ax.set_title(
            f"{result['task']} test ({result['test_rows']} prompts), {result['embedder']}",
            fontsize=10,
        )
        ax.legend(loc="lower right", fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
