"""``/dashboard`` in headless Chromium: the page logs in with the admin key, reads the ledger's
admin routes and shows the ledger's numbers (checked against the ledger itself); a screenshot
is saved in the test's output folder. Skips when Chromium is absent (``.ci/run`` installs it)."""

from __future__ import annotations

import html.parser
import shutil
import statistics
import subprocess
from pathlib import Path

import httpx
import pytest

from _gateway import fake_config, served_over_sockets
from thrifty.testing.fake_openai import FakeOpenAI

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ADMIN = "sk-admin-dashboard"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=15000",
    "--window-size=1200,1400",
]


class Figures(html.parser.HTMLParser):
    """``data-value`` of elements by id, ``data-*`` of table rows by (table id, group)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.rows: dict[tuple[str, str], dict[str, str]] = {}
        self.table = ""
        self.body_loaded = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body_loaded = a.get("data-loaded", "")
        if tag == "table":
            self.table = a.get("id", "")
        if "id" in a and "data-value" in a:
            self.values[a["id"]] = a["data-value"]
        if tag == "tr" and "data-group" in a:
            self.rows[(self.table, a["data-group"])] = a


def chromium(*args: str, profile: Path) -> str:
    assert CHROMIUM is not None
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_dashboard_shows_the_ledgers_numbers(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        config = fake_config(fake.base_url, admin_key=ADMIN, ledger={"url": "memory://"})
        with served_over_sockets(config) as (url, app), httpx.Client(timeout=30) as client:
            for i in range(6):  # 3 distinct questions, each asked twice: misses then hits
                body = {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"question {i % 3}"}],
                }
                assert client.post(f"{url}/v1/chat/completions", json=body).status_code == 200
            flex = {  # billed at Batch API rates: a batch_discount row on the page
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "label this overnight"}],
                "service_tier": "flex",
            }
            assert client.post(f"{url}/v1/chat/completions", json=flex).status_code == 200
            page = client.get(f"{url}/dashboard")
            assert page.status_code == 200 and "dashboard.js" in page.text
            denied = client.get(f"{url}/admin/ledger/summary")
            assert denied.status_code == 401
            bad = client.post(f"{url}/v1/chat/completions", json={"model": "nope", "messages": []})
            assert bad.status_code >= 400
            writer = app.state.gateway.ledger
            writer.flush()
            summary = writer.ledger.summary()
            latencies = sorted(row.latency_ms for row in writer.ledger.rows())
            dom = chromium("--dump-dom", f"{url}/dashboard#key={ADMIN}", profile=tmp_path / "p1")
            chromium(
                f"--screenshot={tmp_path / 'dashboard.png'}",
                f"{url}/dashboard#key={ADMIN}",
                profile=tmp_path / "p2",
            )
            wrong = chromium("--dump-dom", f"{url}/dashboard#key=nope", profile=tmp_path / "p3")
    figures = Figures()
    figures.feed(dom)
    assert figures.body_loaded == "true", dom[-2000:]
    totals = summary.totals
    assert totals.requests == 7
    assert summary.by_mechanism["batch_discount"].saved_usd > 0
    assert int(figures.values["requests"]) == totals.requests
    assert float(figures.values["spent"]) == pytest.approx(totals.cost_usd, abs=1e-12)
    assert float(figures.values["baseline"]) == pytest.approx(totals.baseline_cost_usd, abs=1e-12)
    assert float(figures.values["saved"]) == pytest.approx(totals.saved_usd, abs=1e-12)
    hits = (
        summary.by_mechanism["exact_hit"].requests
        + summary.by_mechanism.get("coalesced", summary.totals.__class__()).requests
    )
    assert hits >= 1
    assert float(figures.values["hit-rate"]) == pytest.approx(hits / totals.requests)
    for mechanism, part in summary.by_mechanism.items():
        row = figures.rows[("by-mechanism", mechanism)]
        assert int(row["data-requests"]) == part.requests
        assert float(row["data-cost"]) == pytest.approx(part.cost_usd, abs=1e-12)
        assert float(row["data-saved"]) == pytest.approx(part.saved_usd, abs=1e-12)
    assert float(figures.values["latency-p50"]) == pytest.approx(
        statistics.quantiles(latencies, n=100, method="inclusive")[49]
    )
    assert float(figures.values["errors"]) >= 1
    assert (tmp_path / "dashboard.png").read_bytes().startswith(b"\x89PNG")
    refused = Figures()
    refused.feed(wrong)
    assert refused.body_loaded == "error" and "requests" not in refused.values
