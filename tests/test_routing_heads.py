"""The mlp and mf router heads, prompt features, the no_gain label, a dollar-budget target, and
outcome files with per-model columns (gzipped, split by a hash of the prompt)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from thrifty.errors import ConfigError
from thrifty.routing.calibration import evaluate, share_for_cost
from thrifty.routing.outcomes import load_outcomes, split_of
from thrifty.routing.prompt_features import FEATURES, prompt_features
from thrifty.routing.route import RouteModel
from thrifty.routing.router import LearnedRouter, routing_label, train_router
from thrifty.semantic.embedder import HashingEmbedder


def two_models(n: int = 2000, dim: int = 16, seed: int = 1) -> tuple[np.ndarray, ...]:
    """Direction 0 says how hard a prompt is; direction 1 says whether the strong model knows
    it. Hard prompts the strong model does not know either are lost causes for both."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    hard = x[:, 0] * 3 + rng.normal(scale=0.3, size=n) < 0
    strong_knows = x[:, 1] > -0.2
    cheap = (~hard).astype(float)
    strong = np.where(hard, strong_knows, 1.0).astype(float)
    return x.astype(np.float32), cheap, strong


@pytest.mark.parametrize("kind", ["mlp", "mf"])
def test_new_heads_beat_random_routing_and_round_trip(kind: str, tmp_path: Path) -> None:
    x, cheap, strong = two_models()
    router = train_router(x, cheap, strong, kind=kind, label="no_gain", target_strong_share=0.3)
    assert router.kind == kind and router.info["label"] == "no_gain"
    x_new, cheap_new, strong_new = two_models(seed=9)
    p = router.probability(x_new)
    point = evaluate(p, cheap_new, strong_new, router.threshold)
    random_quality = 0.7 * cheap_new.mean() + 0.3 * strong_new.mean()
    assert point.quality > random_quality + 0.05
    for suffix in ("npz", "json"):
        file = tmp_path / f"router.{suffix}"
        router.save(file)
        again = LearnedRouter.load(file)
        assert again.kind == kind
        assert np.allclose(again.probability(x_new), p, atol=1e-4)


def test_mf_learns_where_the_strong_model_fails_too() -> None:
    """A prompt both models miss should stay cheap: mf sees the strong model's outcomes."""
    x, cheap, strong = two_models(4000)
    router = train_router(x, cheap, strong, kind="mf", target_strong_share=0.2)
    x_new, cheap_new, strong_new = two_models(seed=5)
    p = router.probability(x_new)
    lost = (cheap_new == 0) & (strong_new == 0)
    worth = (cheap_new == 0) & (strong_new == 1)
    assert p[worth].mean() < p[lost].mean() - 0.1


def test_no_gain_label() -> None:
    cheap, strong = np.array([1, 0, 0, 1.0]), np.array([1, 1, 0, 0.0])
    assert routing_label(cheap, strong, "cheap_ok").tolist() == [1, 0, 0, 1]
    assert routing_label(cheap, strong, "no_gain").tolist() == [1, 0, 1, 1]
    with pytest.raises(ConfigError, match="unknown router label"):
        routing_label(cheap, strong, "vibes")


def test_prompt_features_and_a_router_that_reads_them(tmp_path: Path) -> None:
    texts = ["What is 2+2?", "Compute 17*23 - 5/2 = ?\nA. 1\nB. 2\nC. 3\nD. 4", "hello"]
    f = prompt_features(texts)
    assert f.shape == (3, len(FEATURES)) and np.isfinite(f).all()
    names = list(FEATURES)
    assert f[1, names.index("options")] == 1.0 and f[2, names.index("options")] == 0.0
    assert f[1, names.index("maths")] > f[2, names.index("maths")]
    # A router on embedding+prompt: the features carry the signal (long maths prompts are hard).
    embedder = HashingEmbedder(dim=32)
    rng = np.random.default_rng(0)
    rows = [
        ("Compute " + " * ".join(str(rng.integers(10, 99)) for _ in range(8)) + " = ?", 0.0)
        if i % 2
        else (f"Say hi to friend number {i}", 1.0)
        for i in range(400)
    ]
    prompts = [t for t, _ in rows]
    ok = np.array([y for _, y in rows])
    vectors = np.asarray(embedder.embed(prompts), dtype=np.float32)
    router = train_router(
        vectors, ok, texts=prompts, embedder="hashing", inputs="embedding+prompt", kind="logistic"
    )
    assert router.dim == 32 and router.inputs == "embedding+prompt"
    with pytest.raises(ConfigError, match="texts"):
        router.probability(vectors[:2])
    file = tmp_path / "router.json"
    router.save(file)
    route = RouteModel("auto", ["cheap", "strong"], router=LearnedRouter.load(file))
    hard = route.decide({"prompt": "Compute 12 * 34 * 56 * 78 * 90 * 11 * 22 * 33 = ?"})
    easy = route.decide({"prompt": "Say hi to friend number 7"})
    assert hard.model == "strong" and easy.model == "cheap"
    assert hard.p is not None and hard.threshold == route.router.threshold  # type: ignore[union-attr]


def test_dollar_budget_target() -> None:
    assert share_for_cost(1.0, 0.05) == 1.0
    assert share_for_cost(0.05, 0.05) == 0.0
    assert abs(share_for_cost(0.525, 0.05) - 0.5) < 1e-9
    with pytest.raises(ConfigError, match="cheap-only"):
        share_for_cost(0.01, 0.05)
    x, cheap, strong = two_models()
    router = train_router(x, cheap, strong, target_cost=0.43, cost_ratio=0.05)
    assert router.info["cost_ratio"] == 0.05 and router.info["target_cost"] == 0.43
    point = evaluate(router.probability(x), cheap, strong, router.threshold)
    assert abs(point.strong_share - 0.4) < 0.06
    with pytest.raises(ConfigError, match="cost ratio"):
        train_router(x, cheap, strong, target_cost=0.5)


def test_outcome_files_with_model_columns_gzip_and_a_fixed_split(tmp_path: Path) -> None:
    lines = [
        {"prompt": f"question {i}", "mixtral_correct": i % 3 == 0, "gpt4_correct": True}
        for i in range(200)
    ]
    file = tmp_path / "outcomes.jsonl.gz"
    file.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in lines).encode()))
    kw = {"cheap_column": "mixtral_correct", "strong_column": "gpt4_correct"}
    every = load_outcomes(file, **kw)
    dev, test = load_outcomes(file, split="dev", **kw), load_outcomes(file, split="test", **kw)
    assert len(every) == 200 and len(dev) + len(test) == 200
    assert 0.45 < len(dev) / 200 < 0.75  # 60 % expected
    assert all(split_of(o.text) == "dev" for o in dev)
    assert {o.text for o in dev}.isdisjoint({o.text for o in test})
    assert every[0].cheap_ok is True and every[1].cheap_ok is False and every[1].strong_ok
    with pytest.raises(ConfigError, match=r"outcomes\.jsonl\.gz:1"):
        load_outcomes(file)  # no cheap_ok column: names the file and line
    with pytest.raises(ConfigError, match="unknown split"):
        load_outcomes(file, split="train", **kw)


def subjects(n: int = 3000, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Eight subjects, each a cloud of prompts; the cheap model trails the strong one by a gap that
    grows with the subject (0 in subject 0, 60 points in subject 7): which subject a prompt is in
    says where the strong model is worth its price."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(8, 16))
    group = rng.integers(0, 8, n)
    x = centres[group] + rng.normal(scale=1.2, size=(n, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    strong = (rng.random(n) < 0.85).astype(float)
    cheap = np.where(strong == 1, rng.random(n) > group / 12, rng.random(n) < 0.3).astype(float)
    return x.astype(np.float32), cheap, strong, [f"subject {g}" for g in group]


@pytest.mark.parametrize("named", [True, False])
def test_grouped_head_routes_by_subject_and_round_trips(named: bool, tmp_path: Path) -> None:
    x, cheap, strong, groups = subjects()
    router = train_router(
        x, cheap, strong, groups=groups if named else None, kind="grouped", target_quality=0.95
    )
    assert router.info["groups"] == ("given" if named else "k-means (32)")
    assert router.info.get("group_names", [None])[0] == ("subject 0" if named else None)
    x_new, cheap_new, strong_new, groups_new = subjects(seed=7)
    p = router.probability(x_new)
    hardest = np.array([g == "subject 7" for g in groups_new])
    easiest = np.array([g == "subject 0" for g in groups_new])
    assert p[hardest].mean() < p[easiest].mean() - 0.05
    # At a 30 % strong share it keeps more quality than random routing does.
    threshold = float(np.quantile(p, 0.3))
    random_quality = 0.7 * cheap_new.mean() + 0.3 * strong_new.mean()
    assert evaluate(p, cheap_new, strong_new, threshold).quality > random_quality + 0.02
    for suffix in ("npz", "json"):
        file = tmp_path / f"router.{suffix}"
        router.save(file)
        again = LearnedRouter.load(file)
        assert again.kind == "grouped"
        assert np.allclose(again.probability(x_new), p, atol=1e-4)


def test_grouped_head_needs_every_group_or_none() -> None:
    x, cheap, strong, groups = subjects(200)
    with pytest.raises(ConfigError, match="every outcome its group"):
        train_router(x, cheap, strong, groups=[*groups[:-1], None], kind="grouped")


def test_outcome_files_with_a_group_column(tmp_path: Path) -> None:
    file = tmp_path / "outcomes.jsonl"
    file.write_text(
        json.dumps({"prompt": "a", "cheap_ok": 1, "subject": "law"})
        + "\n"
        + json.dumps({"prompt": "b", "cheap_ok": 0})
        + "\n"
    )
    grouped = load_outcomes(file, group_column="subject")
    assert [o.group for o in grouped] == ["law", None]
    assert [o.group for o in load_outcomes(file)] == [None, None]
