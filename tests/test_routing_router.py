"""The learned router on synthetic outcomes: fit, calibrate to a share or a quality, save, load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from thrifty.errors import ConfigError
from thrifty.routing.calibration import (
    evaluate,
    routing_curve,
    threshold_for_quality,
    threshold_for_share,
)
from thrifty.routing.outcomes import agree, load_outcomes
from thrifty.routing.route import RouteModel
from thrifty.routing.router import LearnedRouter, train_router
from thrifty.routing.scorers import fit_logistic
from thrifty.semantic.embedder import HashingEmbedder


def synthetic(n: int = 2000, dim: int = 16, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors; the cheap model is right when a hidden direction says "easy" (plus noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    easy = x[:, 0] * 3 + rng.normal(scale=0.5, size=n) > -0.5
    return x.astype(np.float32), easy.astype(float)


def test_logistic_regression_recovers_the_direction() -> None:
    x, y = synthetic()
    w, b = fit_logistic(x, y, l2=0.1)
    assert np.argmax(np.abs(w)) == 0 and w[0] > 0
    p = 1 / (1 + np.exp(-(x @ w + b)))
    assert ((p > 0.5) == (y > 0.5)).mean() > 0.85


@pytest.mark.parametrize("kind", ["logistic", "knn"])
def test_trained_router_meets_its_target_share_on_new_data(kind: str) -> None:
    x, y = synthetic()
    router = train_router(x, y, embedder="test", kind=kind, target_strong_share=0.3)
    assert router.kind == kind
    assert router.info["target_strong_share"] == 0.3
    x_new, y_new = synthetic(seed=7)
    p = router.probability(x_new)
    point = evaluate(p, y_new, np.ones_like(y_new), router.threshold)
    assert abs(point.strong_share - 0.3) < 0.05
    # Better than random routing at the same share: random keeps the cheap model's error rate.
    random_quality = 0.7 * y_new.mean() + 0.3
    assert point.quality > random_quality + 0.05


def test_quality_target_picks_the_least_strong_share_that_reaches_it() -> None:
    x, y = synthetic()
    router = train_router(x, y, target_quality=0.95)
    chosen = threshold_for_quality(router.curve, 0.95)
    assert router.threshold == chosen.threshold
    assert chosen.relative_quality >= 0.95
    cheaper = [c for c in router.curve if c.strong_share < chosen.strong_share]
    assert all(c.relative_quality < 0.95 for c in cheaper)


def test_curve_runs_from_all_cheap_to_all_strong() -> None:
    p = np.array([0.1, 0.4, 0.6, 0.9])
    cheap_ok = np.array([0, 0, 1, 1.0])
    curve = routing_curve(p, cheap_ok, steps=4)
    assert [c.strong_share for c in curve] == [0, 0.25, 0.5, 0.75, 1.0]
    assert [c.quality for c in curve] == [0.5, 0.75, 1.0, 1.0, 1.0]
    assert threshold_for_share(p, 0.5) == pytest.approx(0.5)
    strong_ok = np.array([1, 1, 1, 0.0])  # the strong model is wrong once: quality is relative
    assert evaluate(p, cheap_ok, strong_ok, 0.5).relative_quality == pytest.approx(1 / 0.75)


def test_save_load_round_trip_and_retarget(tmp_path: Path) -> None:
    x, y = synthetic()
    router = train_router(x, y, embedder="hashing", target_strong_share=0.4)
    path = tmp_path / "router.json"
    router.save(path)
    assert path.stat().st_size < 20_000
    loaded = LearnedRouter.load(path)
    assert np.allclose(loaded.probability(x[:50]), router.probability(x[:50]), atol=1e-5)
    assert loaded.threshold == pytest.approx(router.threshold)
    wider = loaded.retarget(strong_share=0.6)
    assert wider.threshold > loaded.threshold
    with pytest.raises(ConfigError, match="one of"):
        loaded.retarget(strong_share=0.2, quality=0.9)


def test_knn_router_round_trips_through_npz(tmp_path: Path) -> None:
    x, y = synthetic(800)
    router = train_router(x, y, kind="knn", target_quality=0.9)
    with pytest.raises(ConfigError, match=r"save it as \.npz"):
        router.save(tmp_path / "router.json")
    router.save(tmp_path / "router.npz")
    loaded = LearnedRouter.load(tmp_path / "router.npz")
    assert loaded.kind == "knn" and loaded.info["k"] == router.info["k"]
    assert np.allclose(loaded.probability(x[:20]), router.probability(x[:20]), atol=1e-3)
    assert loaded.threshold == pytest.approx(router.threshold)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.json: cannot read"):
        LearnedRouter.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match=r"bad\.json: not a thrifty router"):
        LearnedRouter.load(bad)


def test_training_refuses_one_class_and_two_targets() -> None:
    x, y = synthetic(100)
    with pytest.raises(ConfigError, match="both"):
        train_router(x, np.ones(100))
    with pytest.raises(ConfigError, match="not both"):
        train_router(x, y, target_strong_share=0.3, target_quality=0.9)


def test_route_model_asks_the_router() -> None:
    embedder = HashingEmbedder(64)
    easy = [f"what time do you open on day {i}" for i in range(60)]
    hard = [f"derive the closed form of integral number {i} with proof" for i in range(60)]
    vectors = embedder.embed(easy + hard)
    labels = np.array([1.0] * 60 + [0.0] * 60)
    router = train_router(vectors, labels, embedder="hashing", target_strong_share=0.5)
    route = RouteModel("auto", ["cheap", "strong"], router=router)
    cheap = route.decide({"messages": [{"role": "user", "content": "what time do you open"}]})
    strong = route.decide(
        {"messages": [{"role": "user", "content": "derive the closed form with proof"}]}
    )
    assert (cheap.model, cheap.by) == ("cheap", "router")
    assert strong.model == "strong" and strong.p is not None and strong.p < router.threshold
    assert strong.reason.startswith("router p=")


def test_outcomes_file_labels_and_agreement(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"prompt": "a", "cheap_ok": True}),
                json.dumps(
                    {"messages": [{"role": "user", "content": "b"}], "cheap_ok": 0, "strong_ok": 1}
                ),
                json.dumps({"prompt": "c", "cheap_answer": " Paris.", "strong_answer": "paris"}),
                json.dumps(
                    {"prompt": "d", "cheap_answer": '{"a": 1}', "strong_answer": '{ "a":1 }'}
                ),
                "",
            ]
        )
    )
    outcomes = load_outcomes(path)
    assert [(o.text, o.cheap_ok, o.strong_ok) for o in outcomes] == [
        ("a", True, None),
        ("b", False, True),
        ("c", True, None),
        ("d", True, None),
    ]
    assert not agree("Paris", "London")
    path.write_text('{"prompt": "a"}\n')
    with pytest.raises(ConfigError, match=r"outcomes.jsonl:1: needs 'cheap_ok'"):
        load_outcomes(path)


def test_a_failing_router_sends_requests_to_the_stronger_model() -> None:
    from thrifty.routing.scorers import LogisticScorer

    router = LearnedRouter(LogisticScorer(np.zeros(8), 0.0), 0.5, embedder="hashing")
    route = RouteModel("auto", ["cheap", "strong"], router=router, embedder=HashingEmbedder(16))
    decision = route.decide({"prompt": "anything"})  # 16-dim vectors, an 8-weight router
    assert (decision.model, decision.by, decision.reason) == ("strong", "default", "router error")


def test_a_static_router_is_served_with_the_static_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A router trained on the static embedder's vectors embeds requests with that embedder (the
    one its file names), the table read from disk: MiniLM is never loaded for it."""
    pytest.importorskip("tokenizers")
    from thrifty.semantic import static
    from thrifty.semantic.minilm_files import load_tokenizer

    vocab = load_tokenizer(None).get_vocab_size()
    table = np.random.default_rng(0).normal(size=(vocab, 16)).astype(np.float32)
    np.save(tmp_path / "table.npy", table)
    monkeypatch.setenv(static.TABLE_PATH_ENV, str(tmp_path / "table.npy"))
    easy = [f"what time do you open on day {i}" for i in range(60)]
    hard = [f"derive the closed form of integral number {i} with proof" for i in range(60)]
    vectors = static.StaticEmbedder(table=table).embed(easy + hard)
    labels = np.array([1.0] * 60 + [0.0] * 60)
    train_router(vectors, labels, embedder="static", target_strong_share=0.5).save(
        tmp_path / "router.json"
    )
    route = RouteModel(
        "auto", ["cheap", "strong"], router=LearnedRouter.load(tmp_path / "router.json")
    )
    assert isinstance(route.embedder, static.StaticEmbedder)
    assert route.embedder.table_path == tmp_path / "table.npy"
    cheap = route.decide({"messages": [{"role": "user", "content": "what time do you open"}]})
    strong = route.decide({"prompt": "derive the closed form with proof"})
    assert (cheap.model, strong.model) == ("cheap", "strong")
    assert strong.p is not None and cheap.p is not None and strong.threshold is not None
    assert strong.p < strong.threshold <= cheap.p
