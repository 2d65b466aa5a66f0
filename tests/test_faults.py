"""The fault suite, short version (issue 12): a real ``thrifty serve`` under steady load while
a backend or an upstream fails, and a gateway killed with SIGKILL mid-load.

Each scenario runs for a few seconds (``benchmarks/bench_faults.py`` is the long version, with
figures in ``benchmarks/RESULTS.md``). Where a fallback exists (the cache fails open, the
``backup`` deployment answers for ``gpt-4o-mini``) no client may see an error and every answer
must be the right one. The machine's Redis and PostgreSQL are reached through a TCP proxy that
the test kills; the servers themselves are never stopped.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import POSTGRES_URL, REDIS_URL
from thrifty.testing.fault_load import (
    UPSTREAM_FAULTS,
    Report,
    backend_scenario,
    kill9_scenario,
    upstream_scenarios,
)

RATE = 40.0  # requests per second in all: steady, well within one worker on 2 shared cores


def assert_clean(report: Report) -> None:
    during = report.of("during")
    assert during, f"{report.name}: no request was sent during the fault"
    failed = [o for o in report.outcomes if o.status != 200]
    assert not failed, f"{report.name}: {len(failed)} client errors, first {failed[0]}"
    assert report.wrong == 0, f"{report.name}: {report.wrong} wrong answers"


def _proxied(url: str, port: int, private: str) -> str:
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    sep = "&" if parts.query else "?"
    return parts._replace(netloc=f"{user}127.0.0.1:{port}").geturl() + sep + private


def _target(url: str, default: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default


def test_upstream_faults_are_answered_by_the_fallback(tmp_path: Path) -> None:
    """429, 500, a hung upstream, a reset and a stall before the first chunk: every request
    of the load is answered right, by the fallback while ``gpt-4o-mini`` fails."""
    reports = upstream_scenarios(
        list(UPSTREAM_FAULTS), tmp_path, rate=RATE, before=0.5, during=1.0, after=0.8,
        cooldown_time=1,
    )  # fmt: skip
    for report in reports:
        assert_clean(report)
        assert any(o.route.startswith("backup") for o in report.of("during")), report.name


@pytest.mark.redis
def test_redis_stopped_mid_load(tmp_path: Path) -> None:
    private = f"prefix=thrifty-test-faults-{uuid.uuid4().hex[:8]}:"
    report = backend_scenario(
        "redis", _target(REDIS_URL, 6379), lambda port: _proxied(REDIS_URL, port, private),
        tmp_path, rate=RATE, before=0.8, during=1.0, after=1.5,
    )  # fmt: skip
    assert_clean(report)
    assert report.recovered_after is not None  # hits came back after the proxy's return


@pytest.mark.postgres
def test_postgres_stopped_mid_load(tmp_path: Path) -> None:
    table = f"thrifty_faults_{uuid.uuid4().hex[:8]}"
    try:
        report = backend_scenario(
            "postgres", _target(POSTGRES_URL, 5432),
            lambda port: _proxied(POSTGRES_URL, port, f"table={table}"),
            tmp_path, rate=RATE, before=0.8, during=1.0, after=1.5,
        )  # fmt: skip
    finally:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (f"{table}%",)
            ).fetchall():
                conn.execute(f'DROP TABLE IF EXISTS "{row[0]}"')
    assert_clean(report)
    # one request on a gateway whose database just died must not wait out a pool timeout
    assert report.latency("during")["max"] < 2000
    assert report.recovered_after is not None


def test_kill_9_mid_load_keeps_sqlite_intact(tmp_path: Path) -> None:
    killed = kill9_scenario(tmp_path, rate=RATE, before=1.0, down=0.3, after=1.0)
    assert killed.integrity == "ok"
    assert killed.entries_after > 0
    assert killed.answers_after == killed.right_after > 0  # every answer right after restart
    report = killed.report
    assert report.wrong == 0  # no wrong answer, before the kill or after the restart
    # only the requests in flight at the kill or sent while it was down failed
    assert all(o.status == 200 for o in report.outcomes if o.at + o.seconds < report.fault_at)
    assert all(o.status == 200 for o in report.of("after"))
    assert report.recovered_after is not None
