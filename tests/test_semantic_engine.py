"""The semantic index on a vector engine (Milvus; milvus-lite here, the same client as a cluster):
scope stays a hard filter, selectors delete, replicas share one index with nothing to catch up,
and an invalidated entry is never served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thrifty.cache import Cache, SemanticSettings
from thrifty.entry import Entry, Selector
from thrifty.errors import ConfigError
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.semantic.engine_index import MilvusIndex, is_engine_url

pytest.importorskip("milvus_lite", reason="pip install 'thrifty[milvus]'")

DIM = 16


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def entry(key: str, **fields: Any) -> Entry:
    return Entry(key=key, value=b"", **fields)


@pytest.fixture
def index(tmp_path: Path) -> Any:
    made = MilvusIndex(f"milvus-lite:///{tmp_path}/index.db", DIM, model="test-embedder")
    yield made
    made.close()


def test_urls() -> None:
    assert is_engine_url("milvus-lite:///x.db") and is_engine_url("milvus://h:19530")
    assert not is_engine_url("/tmp/folder") and not is_engine_url(None)
    with pytest.raises(ConfigError, match=r"milvus-lite:///relative\.db"):
        MilvusIndex("milvus-lite://x.db", DIM)


def test_scope_is_a_hard_filter_and_selectors_delete(index: MilvusIndex) -> None:
    same = unit(1)
    index.add("a", "tenant-a", same, "reset my password", entry("a", namespace="a", user_id="u1"))
    index.add("b", "tenant-b", same, "reset my password", entry("b", namespace="b", tags=("t",)))
    index.add_many(
        ["c", "d"],
        ["tenant-a", "tenant-a"],
        np.stack([unit(2), unit(3)]),
        ["other", "another"],
        [entry("c", namespace="a", model="m1"), entry("d", namespace="a", model="m2")],
    )
    assert len(index) == 4 and "a" in index and "zz" not in index
    found = index.search("tenant-a", same, k=4)
    assert found[0].key == "a" and found[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert found[0].text == "reset my password"
    assert {c.key for c in found} <= {"a", "c", "d"}  # never tenant-b's identical vector
    assert [c.key for c in index.search("tenant-b", same, k=4)] == ["b"]
    assert index.search("tenant-c", same) == []
    assert index.scopes() == {"tenant-a": 3, "tenant-b": 1}

    assert index.remove_matching(Selector(user_id="u1")) == ["a"]
    assert index.remove_matching(Selector(tag="t")) == ["b"]
    assert index.remove_matching(Selector(namespace="a", model="m2")) == ["d"]
    assert index.remove_matching(Selector()) == []
    assert index.remove("c") and not index.remove("c")
    assert len(index) == 0
    index.add("e", 'quote " and \\ scope', unit(4), "odd")  # filter literals are escaped
    assert [c.key for c in index.search('quote " and \\ scope', unit(4))] == ["e"]
    index.clear()
    assert len(index) == 0


def test_a_collection_made_for_another_embedder_is_refused(tmp_path: Path) -> None:
    url = f"milvus-lite:///{tmp_path}/index.db"
    MilvusIndex(url, DIM, model="one").close()
    with pytest.raises(ConfigError, match="made for"):
        MilvusIndex(url, DIM + 1, model="one")


def replica(store_url: str, index_url: str) -> Cache:
    settings = SemanticSettings(embedder=HashingEmbedder(), threshold=0.6, index=index_url)
    cache = Cache(store_url, semantic=settings)
    cache.semantic.background = False
    return cache


def chat(question: str) -> dict:
    return {"model": "m", "temperature": 0, "messages": [{"role": "user", "content": question}]}


def test_replicas_share_one_index_and_never_serve_an_invalidated_entry(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path}/cache.db"
    index_url = f"milvus-lite:///{tmp_path}/shared-index.db"
    first, second = replica(store_url, index_url), replica(store_url, index_url)
    try:
        first.set_request(
            chat("How do I reset my password?"), "Use 'Forgot password'.", tags=("d",)
        )
        # The other replica sees the vector at once: no catch-up from the store, no local copy.
        hit = second.lookup_request(chat("how do i reset my password please"))
        assert hit is not None and hit.kind == "semantic_hit"
        assert hit.value == "Use 'Forgot password'."
        assert not hasattr(second.semantic.index, "_partitions")
        # An invalidation through one replica leaves the engine for all of them ...
        assert first.invalidate(tag="d") == 1
        assert len(second.semantic.index) == 0
        assert second.lookup_request(chat("how do i reset my password please")) is None
        # ... and an entry the store dropped behind the index's back is never served either.
        first.set_request(chat("How do I close my account?"), "Settings > Close.")
        first.store.delete(first.key(chat("How do I close my account?")))
        assert second.lookup_request(chat("how do i close my account please")) is None
    finally:
        first.close()
        second.close()
