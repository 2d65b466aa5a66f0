"""Model prices: exact names, provider prefixes, dated versions, overrides."""

from __future__ import annotations

import pytest

from thrifty.accounting.prices import PriceTable


def test_names_resolve_exactly_then_without_provider_then_by_longest_prefix() -> None:
    table = PriceTable(
        {
            "acme-large": {"input_cost_per_token": 2e-6, "output_cost_per_token": 8e-6},
            "acme-large-v2": {"input_cost_per_token": 3e-6},
        }
    )
    assert table.get("acme-large") is table.get("acme/acme-large")
    assert table.get("acme-large-2026-01-01").input_cost_per_token == 2e-6  # type: ignore[union-attr]
    assert table.get("acme-large-v2-mini").input_cost_per_token == 3e-6  # type: ignore[union-attr]
    assert table.get("nobody-knows-this") is None
    assert table.cost("acme/acme-large-2026-01-01", 1000, 100) == pytest.approx(2e-3 + 8e-4)
    # asked again: the same answers (remembered, not rescanned)
    assert table.get("acme-large-2026-01-01") is table.get("acme-large")
    assert table.get("nobody-knows-this") is None


def test_the_memo_of_resolved_names_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("thrifty.accounting.prices.RESOLVED_MEMO_SIZE", 3)
    table = PriceTable({"acme": {"input_cost_per_token": 1e-6}}, defaults=False)
    for i in range(10):
        assert table.get(f"acme-{i}") is table.get("acme")
        assert table.get(f"other-{i}") is None
    assert len(table._resolved) <= 3
