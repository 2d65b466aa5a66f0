"""``Cache.lookup(build=...)``: built values reused only while the stored bytes are unchanged."""

from __future__ import annotations

from typing import Any

from thrifty import Cache


def test_built_value_is_reused_until_the_entry_changes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = Cache(f"sqlite:///{tmp_path}/c.db")
    calls: list[Any] = []

    def build(payload: Any) -> list[str]:
        calls.append(payload)
        return [payload["text"].upper()]

    cache.set("k", {"text": "one"})
    first = cache.lookup("k", build=build)
    second = cache.lookup("k", build=build)
    assert first is not None and second is not None
    assert first.value == ["ONE"] and second.value is first.value
    assert len(calls) == 1

    cache.set("k", {"text": "two"})  # new bytes: rebuilt
    assert cache.lookup("k", build=build).value == ["TWO"]  # type: ignore[union-attr]
    assert len(calls) == 2

    cache.delete("k")  # the store is read every time: a deleted entry is never served
    assert cache.lookup("k", build=build) is None
    assert cache.stats().hits == 3


def test_a_payload_build_rejects_is_a_miss_and_removed() -> None:
    cache = Cache("memory://")
    cache.set("k", {"unexpected": True})

    def build(payload: Any) -> str:
        return str(payload["text"])  # KeyError: the payload is not what this caller stored

    assert cache.lookup("k", build=build) is None
    assert cache.store.get("k") is None
    assert cache.stats().misses == 1
