"""Student heads: they learn, speak the full class space, and survive arrays-only storage."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.distill.heads import HEADS, fit_temperature, make_head, softmax
from thrifty.errors import ConfigError


def blobs(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, 16)) * 3
    y = rng.integers(0, classes, n)
    return (centres[y] + rng.normal(size=(n, 16))).astype(np.float32), y


OPTIONS = {"mlp": {"hidden": 32, "max_iter": 300}, "logistic": {"max_iter": 200}}


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_each_head_learns_and_restores_from_arrays(kind: str) -> None:
    x, y = blobs(300, 4, seed=1)
    xt, yt = blobs(200, 4, seed=1)
    head = make_head(kind, **OPTIONS.get(kind, {}))
    head.fit(x, y, n_classes=6)  # classes 4 and 5 never seen
    p = head.proba(xt)
    assert p.shape == (200, 6)
    assert (p.argmax(axis=1) == yt).mean() > 0.9
    assert np.all(p[:, 4:] == 0)
    again = HEADS[kind].restore(head.params(), head.arrays())
    np.testing.assert_allclose(again.proba(xt), p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["ridge", "logistic", "mlp"])
def test_two_classes_and_one_class(kind: str) -> None:
    x, y = blobs(120, 2, seed=2)
    head = make_head(kind, **OPTIONS.get(kind, {}))
    head.fit(x, y, n_classes=2)
    assert (head.proba(x).argmax(axis=1) == y).mean() > 0.9
    head.fit(x, np.full(len(x), 1), n_classes=3)
    assert np.all(head.proba(x[:5]).argmax(axis=1) == 1)


def test_knn_is_unsure_far_from_every_stored_pair() -> None:
    x, y = blobs(200, 3, seed=3)
    head = make_head("knn", k=5, tau=0.05, s0=0.7)
    head.fit(x, y, n_classes=3)
    near = head.proba(x[:1]).max()
    far = head.proba(np.ones((1, 16), dtype=np.float32)).max()  # a direction no blob points to
    assert near > 0.9 and far < near


def test_temperature_fit_softens_overconfident_logits() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2000, 3))
    p = softmax(logits)
    y = np.array([rng.choice(3, p=row) for row in p])  # drawn from the true probabilities
    t = fit_temperature(logits * 5, y)  # five times too sharp
    assert 3.5 < t < 7
    assert softmax(logits * 5, t).sum(axis=1) == pytest.approx(np.ones(2000), abs=1e-5)


def test_unknown_heads_and_bad_options_fail_when_built() -> None:
    with pytest.raises(ConfigError, match="unknown student head"):
        make_head("forest")
    with pytest.raises(ConfigError):
        make_head("knn", k=0)
    with pytest.raises(ConfigError):
        make_head("ridge", alpha=0)
