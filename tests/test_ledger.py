"""The ledger's backends answer the same read API, purge and retain rows alike."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from conftest import POSTGRES_URL
from thrifty.errors import ConfigError
from thrifty.ledger import (
    Ledger,
    LedgerRow,
    LedgerWriter,
    Mechanism,
    default_ledger_url,
    hash_user,
    open_ledger,
    summarize,
)
from thrifty.ledger.sql import SqlLedger

DAY = 86400.0
T0 = 1_764_720_000.0  # 2025-12-03T00:00:00Z


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, tmp_path) -> Iterator[Ledger]:
    kind = request.param
    table = f"ledger_{uuid.uuid4().hex[:12]}"
    url = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp_path}/ledger.db",
        "postgres": f"{POSTGRES_URL}?table={table}",
    }[kind]
    opened = open_ledger(url)
    yield opened
    if isinstance(opened, SqlLedger) and kind == "postgres":
        opened.drop_table()
    opened.close()


def _rows() -> list[LedgerRow]:
    mechanisms = [Mechanism.MISS, Mechanism.EXACT_HIT, Mechanism.SEMANTIC_HIT, Mechanism.COALESCED]
    rows = []
    for i in range(40):
        mechanism = mechanisms[i % 4]
        cost = 0.0 if mechanism != Mechanism.MISS else 0.001 * (i + 1)
        rows.append(
            LedgerRow(
                request_id=f"r{i}",
                tenant=("a", "b")[i % 2],
                mechanism=mechanism,
                model=("gpt-4o", "gpt-4o-mini", "claude-3-5-haiku")[i % 3],
                key_id=f"k{i % 2}",
                user=hash_user(f"user{i % 5}"),
                tokens_in=10 + i,
                tokens_out=5 + i,
                tokens_cached=i % 3,
                cost_usd=cost,
                baseline_cost_usd=0.001 * (i + 1),
                latency_ms=float(i),
                ts=T0 + i * 3600.0,  # 40 hours: two UTC days
            )
        )
    return rows


def test_summary_matches_a_recount(ledger: Ledger) -> None:
    rows = _rows()
    ledger.write(rows[:25])
    ledger.write(rows[25:])
    got = ledger.summary().as_dict()
    want = summarize(rows).as_dict()
    _close(got, want)
    assert got["totals"]["requests"] == 40  # type: ignore[index]
    assert set(got["by_day"]) == {"2025-12-03", "2025-12-04"}  # type: ignore[arg-type]
    assert set(got["by_mechanism"]) == {"miss", "exact_hit", "semantic_hit", "coalesced"}  # type: ignore[arg-type]
    # a period and a tenant
    part = ledger.summary(since=T0, until=T0 + DAY, tenant="a")
    recount = summarize(r for r in rows if r.tenant == "a" and r.ts < T0 + DAY)
    _close(part.as_dict(), recount.as_dict())
    assert part.totals.requests == 12


def _close(got: object, want: object) -> bool:
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), (got, want)
        for k in want:
            _close(got[k], want[k])
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    else:
        assert got == want
    return True


def test_series_by_day_and_hour(ledger: Ledger) -> None:
    rows = _rows()
    ledger.write(rows)
    days = ledger.series(bucket="day")
    assert [p.start for p in days][:1] == ["2025-12-03T00:00:00Z"]
    assert sum(p.totals.requests for p in days) == 40
    misses = [p for p in days if p.mechanism == "miss"]
    assert sum(p.totals.cost_usd for p in misses) == pytest.approx(
        sum(r.cost_usd for r in rows if r.mechanism == "miss")
    )
    hours = ledger.series(bucket="hour", since=T0, until=T0 + 4 * 3600)
    assert [(p.start, p.mechanism) for p in hours] == [
        ("2025-12-03T00:00:00Z", "miss"),
        ("2025-12-03T01:00:00Z", "exact_hit"),
        ("2025-12-03T02:00:00Z", "semantic_hit"),
        ("2025-12-03T03:00:00Z", "coalesced"),
    ]


def test_rows_wrong_hits_purges_and_retention(ledger: Ledger) -> None:
    rows = _rows()
    ledger.write(rows)
    assert [r.request_id for r in ledger.rows(limit=3)] == ["r0", "r1", "r2"]
    assert ledger.rows(limit=1)[0] == rows[0]
    assert ledger.mark_wrong_hit("r1") is True
    assert ledger.mark_wrong_hit("nope") is False
    assert ledger.summary().by_mechanism["exact_hit"].wrong_hits == 1
    assert ledger.purge_user("user0") == 8  # i % 5 == 0
    assert ledger.purge_user("") == 0
    assert all(r.user != hash_user("user0") for r in ledger.rows())
    assert ledger.delete_tenant("b") == 16
    assert {r.tenant for r in ledger.rows()} == {"a"}
    old = len([r for r in ledger.rows() if r.ts < T0 + DAY])
    assert old > 0
    assert ledger.purge_before(T0 + DAY) == old
    assert all(r.ts >= T0 + DAY for r in ledger.rows())


def test_writer_batches_off_the_caller_and_flushes(ledger: Ledger) -> None:
    writer = LedgerWriter(ledger, interval=60.0, batch=10)
    rows = _rows()
    started = time.perf_counter()
    for row in rows:
        writer.record(row)
    assert time.perf_counter() - started < 0.05  # appends only
    writer.flush()
    assert ledger.summary().totals.requests == 40
    writer._stop.set()  # stop the thread; the fixture closes the ledger
    writer._wake.set()
    writer._thread.join(5)


def test_writer_retention_sweeps_old_rows() -> None:
    ledger = open_ledger("memory://")
    writer = LedgerWriter(ledger, retention_days=1, interval=0.01)
    old = LedgerRow("old", "t", Mechanism.MISS, ts=time.time() - 3 * DAY)
    new = LedgerRow("new", "t", Mechanism.MISS)
    writer.record(old)
    writer.record(new)
    deadline = time.time() + 5
    while time.time() < deadline and [r.request_id for r in ledger.rows()] != ["new"]:
        writer._last_sweep = 0.0
        time.sleep(0.02)
    writer.close()
    assert [r.request_id for r in ledger.rows()] == ["new"]


def test_writer_drops_past_its_queue_and_survives_a_broken_ledger() -> None:
    class Broken(type(open_ledger("memory://"))):  # type: ignore[misc]
        def write(self, rows):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

    writer = LedgerWriter(Broken(), interval=60.0, max_queue=3)
    for i in range(5):
        writer.record(LedgerRow(f"r{i}", "t", Mechanism.MISS))
    assert writer.dropped == 2
    writer.flush()
    assert writer.failed == 3
    writer.close()


def test_urls() -> None:
    assert default_ledger_url("sqlite:///.thrifty/cache.db") == "sqlite:///.thrifty/ledger.db"
    assert default_ledger_url("sqlite:////var/lib/t/c.db") == "sqlite:////var/lib/t/ledger.db"
    assert default_ledger_url("redis://127.0.0.1:6379/0") == "sqlite:///.thrifty/ledger.db"
    with pytest.raises(ConfigError):
        open_ledger("mysql://x")
    with pytest.raises(ConfigError):
        open_ledger("sqlite:///")
    with pytest.raises(ConfigError):
        open_ledger("sqlite:///x.db?table=bad-name;")


@pytest.mark.postgres
def test_an_unreachable_postgres_ledger_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as raised:
        open_ledger("postgresql://postgres:s3cret@127.0.0.1:1/test")
    assert "s3cret" not in str(raised.value)
