"""The cache's settings objects: validated where they are written, and what each one changes."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

import thrifty
from thrifty.cache import (
    Cache,
    CoalesceSettings,
    SemanticSettings,
    SizeLimits,
    WriteBehindSettings,
)
from thrifty.errors import ConfigError
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.store.memory import MemoryStore


@pytest.mark.parametrize(
    "make",
    [
        lambda: CoalesceSettings(lease_ttl=0),
        lambda: CoalesceSettings(timeout=-1),
        lambda: CoalesceSettings(holder=""),
        lambda: WriteBehindSettings(limit=0),
        lambda: WriteBehindSettings(batch=True),  # a flag where a number belongs
        lambda: SizeLimits(max_entries=0),
        lambda: SizeLimits(max_bytes=-5),
        lambda: SemanticSettings(threshold=1.5),
        lambda: SemanticSettings(threshold=0.8, policy=object()),
    ],
)
def test_bad_settings_fail_where_they_are_written(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_settings_are_frozen() -> None:
    settings = CoalesceSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.lease_ttl = 1.0  # type: ignore[misc]


def test_flags_stand_for_default_settings() -> None:
    assert SemanticSettings.of(True) == SemanticSettings()
    assert SemanticSettings.of(False) is None
    assert WriteBehindSettings.of(True) == WriteBehindSettings()
    assert WriteBehindSettings.of(False) is None
    custom = WriteBehindSettings(limit=5)
    assert WriteBehindSettings.of(custom) is custom
    with pytest.raises(ConfigError, match="write_behind"):
        WriteBehindSettings.of("yes")  # type: ignore[arg-type]


def test_the_constructor_takes_at_most_ten_parameters() -> None:
    params = [p for p in inspect.signature(Cache.__init__).parameters if p != "self"]
    assert len(params) <= 10, params


def test_settings_are_exported_from_thrifty() -> None:
    for name in (
        "SemanticSettings",
        "CoalesceSettings",
        "WriteBehindSettings",
        "SizeLimits",
        "ProtectSettings",
    ):
        assert getattr(thrifty, name) is getattr(thrifty.cache, name)


def test_size_limits_reach_the_store() -> None:
    cache = Cache("memory://", limits=SizeLimits(max_entries=2))
    for key in ("a", "b", "c"):
        cache.set(key, key)
    assert cache.stats().entries == 2
    cache.close()


def test_size_limits_are_refused_with_a_built_store() -> None:
    with pytest.raises(ConfigError, match="limits"):
        Cache(MemoryStore(), limits=SizeLimits(max_entries=2))


def test_coalesce_settings_reach_the_leases(tmp_path: Path) -> None:
    settings = CoalesceSettings(lease_ttl=5.0, timeout=7.0, holder="batch-1", shared_leases=False)
    cache = Cache(f"sqlite:///{tmp_path}/c.db", coalesce=settings)
    assert cache._leases.holder == "batch-1" and cache._leases.ttl == 5.0
    assert not cache._leases.shared and cache.coalesce_timeout == 7.0
    cache.close()


def test_write_behind_settings_bound_the_queue() -> None:
    cache = Cache("memory://", write_behind=WriteBehindSettings(limit=1, batch=1))
    assert cache._behind is not None and cache._behind.accepts()
    assert Cache("memory://")._behind is None  # off by default: misses store before answering
    cache.close()


def test_semantic_settings_build_the_matcher(tmp_path: Path) -> None:
    settings = SemanticSettings(embedder=HashingEmbedder(), threshold=0.7, guard=False, index=None)
    cache = Cache("memory://", semantic=settings)
    assert cache.semantic is not None and cache.semantic.guard is None
    assert cache.semantic.policy.threshold == 0.7  # type: ignore[attr-defined]
    assert Cache("memory://").semantic is None
    cache.close()
