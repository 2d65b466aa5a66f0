"""The audit log (issue 12): one protocol, a backend per store, append-only; every admin action
of a gateway run appears in ``GET /admin/audit`` and ``thrifty audit``; no secret and no end
user's id is recorded."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from typer.testing import CliRunner

from _gateway import fake_config, gateway, stored, web
from conftest import POSTGRES_URL, REDIS_URL
from thrifty.audit import AuditAction, AuditLog, AuditRecord, AuditResult, open_audit, subject
from thrifty.cache import Cache, SemanticSettings
from thrifty.cli import app
from thrifty.errors import UnknownSchemeError
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.testing.fake_openai import FakeOpenAI

ADMIN = "sk-admin-secret-1234"
KEYS = [{"key": "sk-tenant-a-secret", "tenant": "a"}]
EMAIL = "jane.doe@example.com"


def _url(kind: str, tmp_path: Path) -> str:
    tag = uuid.uuid4().hex[:10]
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/cache.db"
    if kind == "redis":
        return f"{REDIS_URL}?prefix=thrifty-test-{tag}:"
    return f"{POSTGRES_URL}?table=thrifty_test_{tag}"


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def audit_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditLog]:
    log = open_audit(_url(request.param, tmp_path))
    yield log
    for cleanup in ("drop", "drop_table"):  # a private stream or table of this test
        getattr(log, cleanup, lambda: None)()
    log.close()


def test_records_come_back_newest_first_and_filtered(audit_log: AuditLog) -> None:
    start = time.time()
    audit_log.record(AuditRecord(AuditAction.CONFIG_LOAD, "gateway", {"source": "gw.yaml"}))
    audit_log.record(
        AuditRecord(
            AuditAction.PURGE_USER, "admin:ab12", {"user": subject(EMAIL)}, detail={"entries": 3}
        )
    )
    audit_log.record(
        AuditRecord(AuditAction.INVALIDATE, "cli:root", {"tag": "doc:1"}, AuditResult.ERROR)
    )
    records = audit_log.read()
    assert [r.action for r in records] == ["cache.invalidate", "cache.purge_user", "config.load"]
    assert all(r.id for r in records) and len({r.id for r in records}) == 3
    purge = records[1]
    assert purge.actor == "admin:ab12" and purge.detail == {"entries": 3}
    assert purge.target == {"user": subject(EMAIL)} and purge.at >= start - 1
    assert records[0].result == "error"
    assert [r.action for r in audit_log.read(action="cache.")] == [
        "cache.invalidate",
        "cache.purge_user",
    ]
    assert [r.action for r in audit_log.read(action="config.load")] == ["config.load"]
    assert len(audit_log.read(limit=1)) == 1
    assert audit_log.read(since=time.time() + 60) == []
    assert audit_log.read(since=1e300) == [] and len(audit_log.read(since=-1e300)) == 3
    assert len(audit_log.read(since=start - 1)) == 3
    assert audit_log.failures == 0
    as_json = json.loads(json.dumps(purge.to_dict()))
    assert as_json["action"] == "cache.purge_user" and as_json["time"].endswith("+00:00")


def test_sqlite_log_is_append_only_in_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cache.db"
    log = open_audit(url)
    log.record(AuditRecord(AuditAction.CLEAR, "cli:root"))
    conn = apsw.Connection(str(tmp_path / "cache.db"))
    with pytest.raises(apsw.ConstraintError, match="append-only"):
        conn.execute("DELETE FROM audit_log")
    with pytest.raises(apsw.ConstraintError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'someone else'")
    with Cache(url) as cache:  # clearing the cache keeps its audit trail
        cache.clear()
    assert [r.action for r in log.read()] == ["cache.clear"]
    log.close()


def test_a_failing_backend_never_fails_the_action(tmp_path: Path) -> None:
    log = open_audit(f"sqlite:///{tmp_path}/cache.db")
    log.close()  # every later write fails
    record = log.record(AuditRecord(AuditAction.CLEAR, "cli:root"))
    assert record.id == "" and log.failures == 1
    with pytest.raises(UnknownSchemeError):
        open_audit("ftp://nowhere")


# ------------------------------------------------------------------ the gateway
def _admin(url: str, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    return web.request(method, f"{url}{path}", headers=headers, **kwargs)


def _ask(question: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "temperature": 0,
            "messages": [{"role": "user", "content": question}]}  # fmt: skip


def test_every_admin_action_of_a_gateway_run_is_in_the_log(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    url_ = f"sqlite:///{tmp_path}/cache.db"
    cache = Cache(url_, semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.6))
    config = fake_config(fake.base_url, keys=KEYS, admin_key=ADMIN)
    with gateway(config, cache=cache) as (url, _):
        tenant = {"Authorization": "Bearer sk-tenant-a-secret"}
        web.post(f"{url}/v1/chat/completions", json=_ask("How do I reset my password?"),
                 headers=tenant)  # fmt: skip
        stored(url)
        hit = web.post(f"{url}/v1/chat/completions",
                       json=_ask("how do i reset my password please"), headers=tenant)  # fmt: skip
        assert hit.headers["x-thrifty-cache-status"] == "SEMANTIC_HIT"
        web.post(f"{url}/v1/thrifty/feedback", headers=tenant,
                 json={"hit_id": hit.headers["x-thrifty-hit-id"], "correct": True})  # fmt: skip
        assert _admin(url, "GET", "/admin/stats").status_code == 200
        assert _admin(url, "POST", "/admin/invalidate", json={"tag": "doc:1"}).status_code == 200
        purged = _admin(url, "POST", "/admin/purge-user", json={"user": EMAIL})
        assert purged.status_code == 200 and purged.json()["scrubbed"] is True
        denied = web.post(f"{url}/admin/invalidate", json={"tag": "x"}, headers=tenant)
        assert denied.status_code == 401

        answer = _admin(url, "GET", "/admin/audit")
        assert answer.status_code == 200
        data = answer.json()["data"]
        assert answer.json()["durable"] is True
        actions = [r["action"] for r in reversed(data)]
        assert actions == [
            "config.load",
            "cache.feedback",
            "cache.stats",
            "cache.invalidate",
            "cache.purge_user",
        ]
        by_action = {r["action"]: r for r in data}
        assert by_action["cache.purge_user"]["target"] == {"user": subject(EMAIL)}
        assert by_action["cache.invalidate"]["detail"] == {"removed": 0}
        assert by_action["cache.feedback"]["target"]["tenant"] == "a"
        assert by_action["cache.stats"]["actor"].startswith("admin:")
        assert by_action["config.load"]["detail"]["admin_api"] is True

        filtered = _admin(url, "GET", "/admin/audit", params={"action": "cache.", "limit": 2})
        assert [r["action"] for r in filtered.json()["data"]] == [
            "cache.purge_user",
            "cache.invalidate",
        ]
        later = _admin(url, "GET", "/admin/audit", params={"since": time.time() + 60})
        assert later.json()["data"] == []
        iso = _admin(url, "GET", "/admin/audit", params={"since": "2020-01-01T00:00:00"})
        assert len(iso.json()["data"]) >= 5
        for bad in (
            {"limit": "0"},
            {"limit": "lots"},
            {"limit": "1e3"},
            {"since": "yesterday"},
            {"since": "nan"},
            {"since": "1e400"},
            {"action": "cache\x00"},
            {"action": "x" * 65},
        ):
            wrong = _admin(url, "GET", "/admin/audit", params=bad)
            assert wrong.status_code == 400, bad
            assert wrong.json()["error"]["param"] == next(iter(bad))
        assert web.get(f"{url}/admin/audit", headers=tenant).status_code == 401

    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for secret in (ADMIN, "sk-tenant-a-secret", EMAIL):  # never recorded anywhere at rest
        assert secret.encode() not in raw, secret

    result = CliRunner().invoke(app, ["audit", "--cache", url_, "--json", "--limit", "1000"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines[0]["action"] == "audit.read" and lines[-1]["action"] == "config.load"
    table = CliRunner().invoke(app, ["audit", "--cache", url_, "--action", "cache.purge_user"])
    assert table.exit_code == 0 and "(records: 1)" in table.output.replace("\n", "")
    assert "admin:" in table.output and "config.load" not in table.output
    bad = CliRunner().invoke(app, ["audit", "--cache", url_, "--since", "soon"])
    assert bad.exit_code == 2


def test_cli_cache_commands_are_audited(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cache.db"
    with Cache(url) as cache:
        cache.set("k1", 1, tags=("doc:1",), user_id=EMAIL)
    runner = CliRunner()
    assert (
        runner.invoke(app, ["cache", "invalidate", "--tag", "doc:1", "--cache", url]).exit_code == 0
    )
    assert (
        runner.invoke(app, ["cache", "invalidate", "--user", EMAIL, "--cache", url]).exit_code == 0
    )
    assert runner.invoke(app, ["cache", "clear", "--yes", "--cache", url]).exit_code == 0
    log = open_audit(url)
    records = log.read()
    log.close()
    assert [r.action for r in records] == ["cache.clear", "cache.invalidate", "cache.invalidate"]
    assert records[2].target == {"tag": "doc:1"} and records[2].detail == {"removed": 1}
    assert records[1].target == {"user": subject(EMAIL)}


class BrokenAuditLog(AuditLog):
    """A FAKE audit backend that is down."""

    def _append(self, record: AuditRecord) -> str:
        raise ConnectionError("audit backend down")

    def _read(self, since: float | None, action: str | None, limit: int) -> list[AuditRecord]:
        raise ConnectionError("audit backend down")


def test_a_down_audit_log_fails_no_admin_action_and_reads_answer_503(fake: FakeOpenAI) -> None:
    config = fake_config(fake.base_url, admin_key=ADMIN)
    with gateway(config) as (url, app):
        broken = app.state.gateway.audit = BrokenAuditLog()
        done = _admin(url, "POST", "/admin/invalidate", json={"tag": "doc:1"})
        assert done.status_code == 200 and broken.failures == 1
        answer = _admin(url, "GET", "/admin/audit")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "audit_unavailable"
