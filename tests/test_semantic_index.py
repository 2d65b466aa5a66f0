"""ScopedIndex: add, search, remove, exact scope filtering, HNSW promotion, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thrifty.semantic.index import ScopedIndex, _HNSWPartition

DIM = 32


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_add_search_replace_remove() -> None:
    rng = np.random.default_rng(0)
    vecs = unit(rng, 3)
    index = ScopedIndex(DIM)
    index.add("a", "s", vecs[0], "text a")
    index.add("b", "s", vecs[1], "text b")
    best = index.search("s", vecs[0], k=2)
    assert [c.key for c in best] == ["a", "b"]
    assert best[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert best[0].text == "text a"
    index.add("a", "s", vecs[2], "new a")  # replacing keeps one vector per key
    assert len(index) == 2
    assert index.search("s", vecs[2], k=1)[0].text == "new a"
    assert index.remove("a") and not index.remove("a")
    assert [c.key for c in index.search("s", vecs[2], k=5)] == ["b"]
    assert index.remove("b")
    assert index.search("s", vecs[1]) == [] and index.scopes() == {}


def test_scopes_never_mix() -> None:
    rng = np.random.default_rng(1)
    v = unit(rng, 1)[0]
    index = ScopedIndex(DIM)
    index.add("tenant-a", "scope-a", v)
    for i in range(50):  # many identical vectors elsewhere cannot crowd out scope-a's match
        index.add(f"other-{i}", f"scope-{i % 5}", v)
    assert [c.key for c in index.search("scope-a", v, k=1)] == ["tenant-a"]
    assert index.search("scope-unknown", v) == []


def test_wrong_dimension_is_rejected() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        ScopedIndex(DIM).add("k", "s", np.ones(DIM + 1, dtype=np.float32))


def test_large_scope_switches_to_hnsw_with_high_recall() -> None:
    rng = np.random.default_rng(2)
    vecs = unit(rng, 600)
    index = ScopedIndex(DIM, ann_threshold=200)
    for i, v in enumerate(vecs):
        index.add(f"k{i}", "big", v)
    assert isinstance(index._parts["big"], _HNSWPartition)
    # The bulk build behind the promotion runs on every core, so the graph (and its recall) varies a
    # little from run to run: 300 queries keep the estimate steady (runs here: 295-300 found, one CI
    # run of the 100-query version found 96), and the bar asks for recall@1 >= 0.95.
    queries = vecs[:300] + 0.05 * unit(rng, 300)
    found = sum(index.search("big", q, k=1)[0].key == f"k{i}" for i, q in enumerate(queries))
    assert found >= 285
    index.remove("k0")
    assert all(c.key != "k0" for c in index.search("big", vecs[0], k=5))
    assert len(index) == 599


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vecs = unit(rng, 300)
    path = tmp_path / "cache.db.semantic"
    index = ScopedIndex(DIM, model="m", path=path, ann_threshold=100)
    for i, v in enumerate(vecs):
        index.add(f"k{i}", "big" if i < 200 else f"small-{i % 3}", v, f"t{i}")
    index.remove("k7")
    index.synced_at = 1234.5
    index.save()
    assert not index.dirty
    loaded = ScopedIndex(DIM, model="m", path=path, ann_threshold=100)
    assert loaded.load()
    assert len(loaded) == 299 and loaded.synced_at == 1234.5
    assert loaded.scopes() == index.scopes()
    for i in (3, 150, 250):
        scope = "big" if i < 200 else f"small-{i % 3}"
        top = loaded.search(scope, vecs[i], k=1)[0]
        assert (top.key, top.text) == (f"k{i}", f"t{i}")
    assert "k7" not in loaded
    loaded.add("new", "big", vecs[7])  # ids keep counting after a load
    assert loaded.search("big", vecs[7], k=1)[0].key == "new"


def test_load_refuses_missing_corrupt_or_other_model(tmp_path: Path) -> None:
    path = tmp_path / "ix"
    assert not ScopedIndex(DIM, model="m", path=path).load()
    index = ScopedIndex(DIM, model="m", path=path)
    index.add("k", "s", unit(np.random.default_rng(4), 1)[0])
    index.save()
    assert not ScopedIndex(DIM, model="other", path=path).load()
    assert not ScopedIndex(DIM + 1, model="m", path=path).load()
    (path / "rows.json").write_text("{not json")
    broken = ScopedIndex(DIM, model="m", path=path)
    assert not broken.load() and len(broken) == 0


def test_bulk_add_matches_single_adds_and_promotes() -> None:
    rng = np.random.default_rng(5)
    vecs = unit(rng, 400)
    keys = [f"k{i}" for i in range(400)]
    scopes = ["big" if i % 4 else f"small-{i % 8}" for i in range(400)]
    bulk = ScopedIndex(DIM, ann_threshold=150)
    bulk.add_many(keys[:100], scopes[:100], vecs[:100], keys[:100])
    bulk.add_many(keys[100:], scopes[100:], vecs[100:], keys[100:])  # "big" crosses 150 here
    assert isinstance(bulk._parts["big"], _HNSWPartition)
    assert len(bulk) == 400 and bulk.scopes()["big"] == 300
    for i in (1, 2, 3, 4, 8, 399):
        top = bulk.search(scopes[i], vecs[i], k=1)[0]
        assert (top.key, top.text) == (keys[i], keys[i])
        assert top.similarity == pytest.approx(1.0, abs=2e-3)  # f16 storage in HNSW scopes
    bulk.add_many(["k1"], ["small-x"], vecs[:1], ["moved"])  # a re-added key moves
    assert bulk.search("small-x", vecs[0], k=1)[0].text == "moved"
    assert all(c.key != "k1" for c in bulk.search("big", vecs[1], k=3))
