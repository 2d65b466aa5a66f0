"""``Cache(protect=ProtectSettings(...))``: the PII guard decides what is stored, and with a key
nothing readable reaches the backend (the raw SQLite file and WAL, Redis keys and values,
PostgreSQL rows are scanned for the plaintext)."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import pytest

from conftest import Backend
from thrifty.cache import Cache, ProtectSettings, SemanticSettings
from thrifty.errors import ConfigError
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.store.memory import MemoryStore

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
ANSWER = "Your parcel left the depot on Tuesday"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _request(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def _answer(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


def _semantic() -> SemanticSettings:
    return SemanticSettings(embedder=HashingEmbedder(), threshold=0.5, index=None)


# ---------------------------------------------------------------- settings
def test_settings_validate_and_default_to_off() -> None:
    assert not ProtectSettings().active
    assert ProtectSettings(pii="redact").active
    with pytest.raises(ConfigError, match="pii"):
        ProtectSettings(pii="scrub")
    with pytest.raises(ConfigError, match="old_keys"):
        ProtectSettings(old_keys=(_key(),))


def test_protection_off_builds_the_plain_cache() -> None:
    store = MemoryStore()
    cache = Cache(store, protect=ProtectSettings())
    assert cache.store is store and cache._layers == ()


# ---------------------------------------------------------------- skip_store
@pytest.mark.parametrize("semantic", [False, True])
def test_skip_store_answers_and_stores_nothing(semantic: bool) -> None:
    cache = Cache(
        "memory://",
        protect=ProtectSettings(pii="skip_store"),
        semantic=_semantic() if semantic else False,
    )
    asked = _request(f"Where is my parcel? Mail me at {EMAIL}")
    clean = _request("Where is my parcel?")
    assert cache.set_request(asked, _answer(ANSWER)) is None  # PII in the prompt
    assert cache.set_request(clean, _answer(f"Card {CARD} was charged")) is None  # in the answer
    assert cache.set("k", f"write to {EMAIL}") is None
    calls: list[int] = []

    def compute() -> dict[str, Any]:
        calls.append(1)
        return _answer(ANSWER)

    key = cache.key(asked)
    for _ in range(2):
        value, status = cache.get_or_compute(key, compute, request=asked)
        assert value == _answer(ANSWER) and status == "miss"
    assert len(calls) == 2
    assert cache.stats().entries == 0
    assert cache.lookup_request(clean) is None
    # an exchange without PII is stored as usual
    assert cache.set_request(clean, _answer(ANSWER)) is not None
    hit = cache.lookup_request(clean)
    assert hit is not None and hit.value == _answer(ANSWER)


def test_skip_store_under_write_behind_stores_nothing() -> None:
    cache = Cache("memory://", protect=ProtectSettings(pii="skip_store"), write_behind=True)
    asked = _request(f"Refund card {CARD}")

    async def compute() -> dict[str, Any]:
        return _answer(ANSWER)

    async def main() -> list[str]:
        statuses = []
        for _ in range(2):
            value, status = await cache.aget_or_compute(cache.key(asked), compute, request=asked)
            assert value == _answer(ANSWER)
            statuses.append(str(status))
            await cache.adrain()
        return statuses

    assert asyncio.run(main()) == ["miss", "miss"]
    assert cache.stats().entries == 0
    cache.close()


# ---------------------------------------------------------------- redact
def test_redact_stores_placeholders_under_the_redacted_requests_key() -> None:
    store = MemoryStore()
    cache = Cache(store, protect=ProtectSettings(pii="redact"), semantic=_semantic())
    first = _request(f"Mail the invoice to {EMAIL}")
    second = _request("Mail the invoice to bob@example.org")
    entry = cache.set_request(first, _answer(f"Sent to {EMAIL}"))
    assert entry is not None and entry.key != cache.key(first)
    stored = store.get(entry.key)
    assert stored is not None and EMAIL.encode() not in stored.value
    assert b"[EMAIL]" in stored.value
    assert stored.semantic is not None and EMAIL.encode() not in stored.semantic
    for request in (first, second):  # differing only in the address: one shared entry
        hit = cache.lookup_request(request)
        assert hit is not None and hit.value == _answer("Sent to [EMAIL]")
    assert store.usage()[0] == 1


# ---------------------------------------------------------------- encryption
def test_rotated_keys_still_open_old_entries_and_tampering_misses() -> None:
    store = MemoryStore()
    old, new = f"k1:{_key()}", f"k2:{_key()}"
    Cache(store, protect=ProtectSettings(encryption_key=old)).set("a", ANSWER)
    rotated = Cache(store, protect=ProtectSettings(encryption_key=new, old_keys=(old,)))
    assert rotated.get("a") == ANSWER
    rotated.set("b", ANSWER)
    assert store.get("b") is not None and store.get("b").value[5:7] == b"k2"  # type: ignore[union-attr]
    without_old = Cache(store, protect=ProtectSettings(encryption_key=new))
    assert without_old.get("a") is None  # unknown key: a miss, counted
    assert without_old.stats().errors == 1
    stolen = store.get("b")
    assert stolen is not None
    store.set(type(stolen)("c", stolen.value))  # a blob copied under another key
    assert rotated.get("c") is None


def _raw_bytes(backend: Backend, store: Any, path: Path) -> list[bytes]:
    """Everything the backend holds for this test, as raw bytes."""
    if backend.kind == "sqlite":
        # the database, its WAL and shared-memory files, as they are on disk now
        return [p.read_bytes() for p in path.rglob("*") if p.is_file()]
    if backend.kind == "redis":
        client, blobs = store._client, []
        for name in client.scan_iter(match=store.prefix + "*"):
            blobs.append(name)
            kind = client.type(name)
            if kind == b"string":
                blobs.append(client.get(name))
            elif kind == b"hash":
                blobs.extend(b for pair in client.hgetall(name).items() for b in pair)
            elif kind == b"set":
                blobs.extend(client.smembers(name))
            elif kind == b"zset":
                blobs.extend(client.zrange(name, 0, -1))
            elif kind == b"list":
                blobs.extend(client.lrange(name, 0, -1))
        return blobs
    blobs = []
    with store._pool.connection() as conn:
        for table in (store.table, f"{store.table}_counters", f"{store.table}_leases"):
            for row in conn.execute(f"SELECT * FROM {table}").fetchall():
                for cell in row:
                    if isinstance(cell, bytes | memoryview):
                        blobs.append(bytes(cell))
                    else:
                        blobs.append(str(cell).encode())
    return blobs


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"], indirect=True)
def test_no_plaintext_at_rest_with_encryption_on(backend: Backend, tmp_path: Path) -> None:
    store = backend.open()
    semantic = SemanticSettings(embedder=HashingEmbedder(), threshold=0.5)  # index beside it
    cache = Cache(store, protect=ProtectSettings(encryption_key=_key()), semantic=semantic)
    asked = _request(f"My card {CARD} and mail {EMAIL}: where is the parcel?")
    cache.set_request(asked, _answer(ANSWER), user_id=EMAIL, tags=("orders",))
    hit = cache.lookup_request(asked)
    assert hit is not None and hit.value == _answer(ANSWER)  # readable through the cache
    cache.flush()
    assert cache.semantic is not None
    cache.semantic.save()  # no index folder under encryption: nothing to write
    scanned = _raw_bytes(backend, store, tmp_path)
    assert any(scanned)
    for secret in (EMAIL, CARD, ANSWER, "where is the parcel"):
        assert not any(secret.encode() in blob for blob in scanned if blob), secret
    assert cache.invalidate(user_id=EMAIL) == 1  # purge by the raw id still finds the entry
