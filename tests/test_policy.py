"""thrifty.policy: the cache modes, per-request overrides and the temperature rule."""

from __future__ import annotations

import pytest

from thrifty.errors import ConfigError
from thrifty.policy import CacheMode, CachePolicy, cacheable_temperature


@pytest.mark.parametrize(
    ("mode", "read", "write", "refresh", "bypass"),
    [
        (CacheMode.DEFAULT, True, True, False, False),
        (CacheMode.NO_STORE, True, False, False, False),
        (CacheMode.REFRESH, False, True, True, False),
        (CacheMode.NO_CACHE, False, False, False, True),
    ],
)
def test_each_mode_says_what_the_cache_may_do(mode, read, write, refresh, bypass) -> None:
    policy = CachePolicy(mode)
    assert (policy.read, policy.write, policy.refresh, policy.bypass) == (
        read, write, refresh, bypass,
    )  # fmt: skip


def test_modes_are_the_words_callers_send() -> None:
    assert [str(m) for m in CacheMode] == ["default", "no-cache", "no-store", "refresh"]
    assert CachePolicy().with_options({"cache": " No-Store "}).mode is CacheMode.NO_STORE


@pytest.mark.parametrize(
    ("temperature", "opt_in", "cached"),
    [(None, False, True), (0, False, True), (0.0, False, True), (0.7, False, False),
     (0.7, True, True), ("0", True, False), (True, True, False)],
)  # fmt: skip
def test_the_temperature_rule(temperature, opt_in, cached) -> None:
    assert cacheable_temperature(temperature, opt_in) is cached
    policy = CachePolicy(cache_temperature=opt_in).for_temperature(temperature)
    assert policy.bypass is not cached


def test_options_override_the_defaults_and_missing_ones_keep_them() -> None:
    base = CachePolicy(namespace="team", ttl=60.0)
    assert base.with_options(None) is base
    assert base.with_options({"ttl": None}) is base
    changed = base.with_options({"ttl": "30", "namespace": "other", "cache_temperature": True})
    assert changed == CachePolicy(namespace="other", ttl=30.0, cache_temperature=True)
    assert changed.for_temperature(0.9).mode is CacheMode.DEFAULT
    assert CachePolicy(CacheMode.NO_CACHE).for_temperature(0).bypass


@pytest.mark.parametrize(
    "options",
    [{"cache": "sometimes"}, {"ttl": -1}, {"ttl": "soon"}, {"ttl": float("inf")}, {"ttl": True},
     {"namespace": ""}, {"namespace": "x" * 201}, {"colour": "red"}],
)  # fmt: skip
def test_bad_options_are_config_errors(options) -> None:
    with pytest.raises(ConfigError):
        CachePolicy().with_options(options)
