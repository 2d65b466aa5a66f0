"""thrifty.Cache(semantic=True): hits on reworded questions, only within the scope, never from an
entry the store no longer serves; the index persists, rebuilds and catches up from the store."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import Backend
from thrifty.cache import Cache, SemanticSettings
from thrifty.entry import Selector
from thrifty.semantic.base import Embedder, Guard
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.semantic.policy import FixedThreshold

QUESTION = "How do I reset my password?"
REWORDED = "how do i reset my password please"


def chat(question: str = QUESTION, system: str = "You are a support bot.", **over: Any) -> dict:
    request = {
        "model": "gpt-4o-mini",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ],
    }
    request.update(over)
    return request


class RecordingPolicy(FixedThreshold):
    def __init__(self, threshold: float = 0.6, verify: bool = False) -> None:
        super().__init__(threshold)
        self.verify = verify
        self.records: list[tuple[str, float, bool]] = []
        self.forgotten: list[str] = []

    def record(self, entry_key: str, similarity: float, correct: bool) -> None:
        self.records.append((entry_key, similarity, correct))

    def wants_verification(self, entry_key: str, similarity: float) -> bool:
        return self.verify

    def forget(self, entry_key: str) -> None:
        self.forgotten.append(entry_key)


def semantic_cache(backend: Backend, tmp_path: Path, **options: Any) -> Cache:
    options.setdefault("embedder", HashingEmbedder())
    options.setdefault("threshold", 0.6) if "policy" not in options else None
    options.setdefault("index", tmp_path / "index")
    cache = backend.cache(semantic=SemanticSettings(**options))
    cache.semantic.background = False  # rebuilds and catch-ups inside the lookup: deterministic
    return cache


def test_reworded_question_is_a_semantic_hit(backend: Backend, tmp_path: Path) -> None:
    cache = semantic_cache(backend, tmp_path)
    assert cache.lookup_request(chat()) is None
    entry = cache.set_request(chat(), {"answer": "Use 'Forgot password'."}, tokens_in=10,
                              tokens_out=5, cost_usd=0.001)  # fmt: skip
    assert entry is not None and entry.semantic is not None
    exact = cache.lookup_request(chat())
    assert exact is not None and exact.kind == "hit"
    hit = cache.lookup_request(chat(REWORDED))
    assert hit is not None and hit.kind == "semantic_hit"
    assert hit.value == {"answer": "Use 'Forgot password'."}
    assert 0.6 <= hit.similarity < 1.0 and hit.id
    assert cache.lookup_request(chat("What is the weather in Paris?")) is None
    stats = cache.stats()
    assert (stats.hits, stats.semantic_hits, stats.misses) == (1, 1, 2)
    assert stats.tokens_saved == 30 and stats.usd_saved == pytest.approx(0.002)


def test_scope_isolation(tmp_path: Path) -> None:
    cache = Cache(
        "memory://",
        semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.5, index=None),
    )
    cache.set_request(chat(), "support answer")
    assert cache.lookup_request(chat(REWORDED)) is not None
    # The very same question never crosses a system prompt, model, parameter, history or tenant.
    assert cache.lookup_request(chat(system="You are a pirate.")) is None
    assert cache.lookup_request(chat(model="gpt-4o")) is None
    assert cache.lookup_request(chat(temperature=0.7)) is None
    assert cache.lookup_request(chat(), namespace="tenant-b") is None
    history = chat()
    history["messages"] = [
        history["messages"][0],
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        history["messages"][1],
    ]
    assert cache.lookup_request(history) is None  # fmt: skip
    assert cache.stats().semantic_hits == 1


def test_invalidated_deleted_or_expired_entries_are_never_served(
    backend: Backend, tmp_path: Path
) -> None:
    policy = RecordingPolicy()
    cache = semantic_cache(backend, tmp_path, policy=policy)
    cache.set_request(chat(), "tagged", tags=("doc:1",))
    assert cache.lookup_request(chat(REWORDED)) is not None
    key = cache.key(chat())
    assert cache.store.invalidate(Selector(tag="doc:1")) == 1  # as another replica would
    assert key in cache.semantic.index  # the vector is still in this process's index ...
    assert cache.lookup_request(chat(REWORDED)) is None  # ... but never served
    assert key not in cache.semantic.index and policy.forgotten == [key]
    cache.set_request(chat(), "tagged again", tags=("doc:1",))
    assert cache.invalidate(tag="doc:1") == 1  # through this cache: the index forgets at once
    assert key not in cache.semantic.index and policy.forgotten == [key, key]

    cache.set_request(chat(), "deleted behind the cache's back")
    cache.store.delete(key)  # as another process would
    assert cache.lookup_request(chat(REWORDED)) is None

    cache.set_request(chat(), "short-lived", ttl=1.0)
    assert cache.lookup_request(chat(REWORDED)) is not None
    time.sleep(1.1)
    assert cache.lookup_request(chat(REWORDED)) is None

    cache.set_request(chat(), "deleted")
    cache.delete(key)
    assert key not in cache.semantic.index
    cache.set_request(chat(), "cleared")
    cache.clear()
    assert len(cache.semantic.index) == 0 and cache.lookup_request(chat(REWORDED)) is None


def test_index_is_rebuilt_from_the_store(shared_backend: Backend, tmp_path: Path) -> None:
    writer = semantic_cache(shared_backend, tmp_path, index=tmp_path / "writer")
    writer.set_request(chat(), "from the store")
    writer.set(writer.key(chat("exact only")), "no vector")  # not semantic: not indexed
    reader = semantic_cache(shared_backend, tmp_path, index=tmp_path / "reader")
    hit = reader.lookup_request(chat(REWORDED))  # no index file: rebuilt from the store
    assert hit is not None and hit.value == "from the store"
    assert len(reader.semantic.index) == 1


def test_other_processes_writes_are_caught_up(shared_backend: Backend, tmp_path: Path) -> None:
    reader = semantic_cache(shared_backend, tmp_path, index=tmp_path / "reader")
    reader.semantic.sync_interval = 0.0
    assert reader.lookup_request(chat(REWORDED)) is None  # index ready, empty
    writer = semantic_cache(shared_backend, tmp_path, index=tmp_path / "writer")
    writer.set_request(chat(), "written elsewhere")
    hit = reader.lookup_request(chat(REWORDED))
    assert hit is not None and hit.value == "written elsewhere"


def test_index_persists_beside_sqlite_and_is_reused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cache.db"
    first = Cache(url, semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.6))
    first.set_request(chat(), "persisted")
    first.close()
    folder = tmp_path / "cache.db.semantic"
    assert (folder / "manifest.json").is_file()
    second = Cache(url, semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.6))
    assert second.semantic.index.load()  # the file is used, not a rebuild
    assert second.lookup_request(chat(REWORDED)).value == "persisted"
    second.close()
    other = Cache(url, semantic=SemanticSettings(embedder=HashingEmbedder(dim=64), threshold=0.6))
    assert not other.semantic.index.load()  # another embedder: its vectors do not compare
    other.close()


def test_get_or_compute_reports_semantic_hits(tmp_path: Path) -> None:
    cache = Cache("memory://", semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.6))
    calls: list[str] = []

    def compute(q: str):  # type: ignore[no-untyped-def]
        return lambda: calls.append(q) or f"answer to {q}"

    first = cache.get_or_compute(cache.key(chat()), compute(QUESTION), request=chat())
    again = cache.get_or_compute(cache.key(chat(REWORDED)), compute(REWORDED),
                                 request=chat(REWORDED))  # fmt: skip
    seen: list[Any] = []
    other = chat("how do i reset my password")
    cache.get_or_compute(cache.key(other), compute("x"), request=other, on_hit=seen.append)
    assert seen[0].kind == "semantic_hit" and 0.6 <= seen[0].similarity < 1 and seen[0].id
    assert first == (f"answer to {QUESTION}", "miss")
    assert again == (f"answer to {QUESTION}", "semantic_hit")
    assert calls == [QUESTION]
    plain = cache.get_or_compute(cache.key(chat(REWORDED)), compute(REWORDED))
    assert plain[1] == "miss"  # without the request: exact only


async def test_async_face(tmp_path: Path) -> None:
    cache = Cache("memory://", semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.6))

    async def compute() -> str:
        return "async answer"

    assert await cache.aget_or_compute(cache.key(chat()), compute, request=chat()) == (
        "async answer", "miss")  # fmt: skip
    hit = await cache.alookup_request(chat(REWORDED))
    assert hit is not None and hit.kind == "semantic_hit"
    await cache.aset_request(chat("Where is my parcel?"), "tracking")
    assert (await cache.alookup_request(chat("where is my parcel"))).value == "tracking"
    assert await cache.afeedback(hit.id, True)


def test_feedback_reaches_the_policy() -> None:
    policy = RecordingPolicy()
    cache = Cache("memory://", semantic=SemanticSettings(embedder=HashingEmbedder(), policy=policy))
    cache.set_request(chat(), "answer")
    hit = cache.lookup_request(chat(REWORDED))
    entry_key = cache.key(chat())
    assert cache.feedback(hit.id, False)
    assert cache.feedback(cache.key(chat(REWORDED)), True)  # by the asking request's key
    assert cache.feedback(entry_key, True, similarity=0.9)
    assert not cache.feedback("unknown", True)
    assert policy.records == [
        (entry_key, hit.similarity, False),
        (entry_key, hit.similarity, True),
        (entry_key, 0.9, True),
    ]
    assert not Cache("memory://").feedback(hit.id, True)


def test_verification_asks_the_model_and_records_the_outcome() -> None:
    policy = RecordingPolicy(verify=True)
    cache = Cache(
        "memory://",
        semantic=SemanticSettings(
            embedder=HashingEmbedder(),
            policy=policy,
            verifier=lambda cached, fresh: cached == fresh,
        ),
    )
    cache.set_request(chat(), "same answer")
    _, status = cache.get_or_compute(
        cache.key(chat(REWORDED)), lambda: "same answer", request=chat(REWORDED)
    )
    assert status == "miss"  # verified: the model was asked
    assert [(k, r) for k, _, r in policy.records] == [(cache.key(chat()), True)]
    cache.get_or_compute(cache.key(chat("how do i reset my password now")), lambda: "other",
                         request=chat("how do i reset my password now"))  # fmt: skip
    assert policy.records[-1][2] is False


class DigitGuard(Guard):
    def blocks(self, query: str, candidate: str) -> str | None:
        digits = lambda t: [c for c in t if c.isdigit()]  # noqa: E731
        return "number" if digits(query) != digits(candidate) else None


def test_guard_blocks_a_hit() -> None:
    cache = Cache(
        "memory://",
        semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.5, guard=DigitGuard()),
    )
    cache.set_request(chat("refund for order 1234"), "refund 1234")
    assert cache.lookup_request(chat("refund for order 1234 please")) is not None
    assert cache.lookup_request(chat("refund for order 1235 please")) is None


class BrokenEmbedder(Embedder):
    dim = 8
    name = "broken"

    def _embed(self, texts: list[str]) -> np.ndarray:
        raise RuntimeError("embedding service down")


def test_a_broken_embedder_fails_open() -> None:
    cache = Cache("memory://", semantic=SemanticSettings(embedder=BrokenEmbedder()))
    entry = cache.set_request(chat(), "stored anyway")
    assert entry is not None and entry.semantic is None
    assert cache.lookup_request(chat()).value == "stored anyway"  # exact still works
    assert cache.lookup_request(chat(REWORDED)) is None
    assert cache.stats().errors >= 2


def test_real_minilm_hit_through_the_cache() -> None:
    cache = Cache("memory://", semantic=True)  # the default local embedder
    cache.set_request(chat("How can I change my password?"), "Settings > Security")
    hit = cache.lookup_request(chat("How do I change my password?"))
    assert hit is not None and hit.similarity > 0.9
    assert cache.lookup_request(chat("How do I close my account?")) is None


def test_exact_only_cache_loads_no_embedder() -> None:
    code = (
        "import sys, thrifty\n"
        "c = thrifty.Cache('memory://')\n"
        "c.set_request({'model': 'm', 'messages': [{'role': 'user', 'content': 'q'}]}, 'a')\n"
        "assert c.lookup_request({'model': 'm', 'messages': [{'role': 'user', 'content': 'q'}]})\n"
        "heavy = {'onnxruntime', 'tokenizers', 'usearch', 'thrifty.semantic'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rebuild_and_catch_up_run_in_the_background(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bg.db"
    writer = Cache(
        url,
        semantic=SemanticSettings(
            embedder=HashingEmbedder(), threshold=0.6, index=tmp_path / "writer"
        ),
    )
    writer.set_request(chat(), "stored before the reader started")
    reader = Cache(
        url,
        semantic=SemanticSettings(
            embedder=HashingEmbedder(), threshold=0.6, index=tmp_path / "reader"
        ),
    )
    assert reader.semantic.background
    reader.lookup_request(chat(REWORDED))  # starts the rebuild; never waits for it
    reader.semantic.wait(10)
    assert reader.lookup_request(chat(REWORDED)).value == "stored before the reader started"
    reader.semantic.sync_interval = 0.0
    writer.set_request(chat("Where is my parcel?"), "written later")
    reader.lookup_request(chat("where is my parcel"))  # starts a catch-up
    reader.semantic.wait(10)
    assert reader.lookup_request(chat("where is my parcel")).value == "written later"
    writer.close()
    reader.close()


def test_invalidation_and_user_purge_leave_the_index_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/purge.db"
    cache = Cache(url, semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.6))
    cache.semantic.background = False
    cache.set_request(chat("my secret question about invoices"), "a", user_id="u1")
    cache.set_request(chat("another question about refunds"), "b", user_id="u2", tags=("doc:9",))
    assert len(cache.semantic.index) == 2
    assert cache.invalidate(user_id="u1") == 1
    assert len(cache.semantic.index) == 1
    saved = (tmp_path / "purge.db.semantic" / "rows.json").read_text()
    assert "secret" not in saved and "refunds" in saved  # the purge was written through
    assert cache.invalidate(tag="doc:9") == 1
    assert len(cache.semantic.index) == 0
    cache.close()
    reopened = Cache(url, semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.6))
    assert reopened.semantic.index.load() and len(reopened.semantic.index) == 0
    reopened.close()


def test_semantic_can_be_turned_off_per_namespace_or_tenant() -> None:
    cache = Cache("memory://", semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.6))
    cache.set_semantic("acme", False)  # the whole tenant, sub-namespaces included
    for ns in ("acme", "acme/support", "globex"):
        cache.set_request(chat(), f"answer for {ns}", namespace=ns)
    assert cache.lookup_request(chat(REWORDED), namespace="acme") is None
    assert cache.lookup_request(chat(REWORDED), namespace="acme/support") is None
    assert cache.lookup_request(chat(), namespace="acme").value == "answer for acme"  # exact
    assert cache.lookup_request(chat(REWORDED), namespace="globex").value == "answer for globex"
    assert len(cache.semantic.index) == 1  # entries of a tenant with semantic off: not indexed
    cache.set_semantic("acme", True)
    cache.set_request(chat(), "indexed now", namespace="acme")
    assert cache.lookup_request(chat(REWORDED), namespace="acme").value == "indexed now"
    assert not Cache("memory://").semantic_enabled("x")


def test_guards_are_on_by_default_and_can_be_turned_off() -> None:
    default = Cache(
        "memory://", semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.5)
    )
    assert default.semantic.guard is not None
    default.set_request(chat("refund for order 1234"), "refund 1234")
    assert default.lookup_request(chat("refund for order 1235")) is None  # number differs
    off = Cache(
        "memory://",
        semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.5, guard=False),
    )
    assert off.semantic.guard is None


def test_verification_has_a_default_answer_comparison() -> None:
    policy = RecordingPolicy(verify=True)
    cache = Cache("memory://", semantic=SemanticSettings(embedder=HashingEmbedder(), policy=policy))
    chat_body = {"choices": [{"message": {"role": "assistant", "content": "Use the reset link."}}]}
    cache.set_request(chat(), {"completion": chat_body})
    cache.get_or_compute(cache.key(chat(REWORDED)), lambda: {"completion": chat_body},
                         request=chat(REWORDED))  # fmt: skip
    other = chat("how do i reset my password now")
    cache.get_or_compute(cache.key(other), lambda: "Call the bank about your card limits.",
                         request=other)  # fmt: skip
    assert [r for _, _, r in policy.records] == [True, False]


def test_answer_text_reads_every_stored_shape() -> None:
    from thrifty.semantic.verify import answer_text

    body = {"choices": [{"message": {"content": "hi"}}]}
    assert answer_text("plain") == "plain"
    assert answer_text({"completion": body}) == "hi"
    assert answer_text({"choices": [{"text": "t"}]}) == "t"
    chunks = [{"choices": [{"delta": {"content": c}}]} for c in "hi"]
    assert answer_text({"chunks": chunks}) == "hi"
    lc = [{"message": {"type": "ai", "data": {"content": "lc"}}}, {"text": "llm"}]
    assert answer_text(lc) == "lc\nllm"
    assert answer_text(42) == "42"
