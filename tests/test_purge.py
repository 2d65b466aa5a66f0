"""``purge user`` really deletes (issue 12, item 8): after a purge the user's e-mail and card
number are nowhere in the raw SQLite file, its WAL or the semantic index folder, in Redis's keys
and values or in PostgreSQL's rows; other users' entries stay; purge hooks (a ledger) run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import Backend
from test_cache_protect import _raw_bytes
from thrifty.audit import AuditAction, open_audit, subject
from thrifty.cache import Cache, SemanticSettings
from thrifty.cli import app
from thrifty.safety.purge import purge_user
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.store.memory import MemoryStore

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
OTHER = "sam.other@example.org"


def _request(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def _answer(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


def _fill(cache: Cache) -> None:
    """The user's exchanges, rewritten a few times (old versions pile up in the WAL and in
    free pages), and one of another user."""
    for round_ in range(3):
        for n in range(4):
            asked = _request(f"I am {EMAIL}, card {CARD}: where is order {n}?")
            answer = _answer(f"Order {n} for {EMAIL} ships in {round_ + 2} days")
            cache.set_request(asked, answer, user_id=EMAIL)
    cache.set_request(_request(f"I am {OTHER}: hello"), _answer("hi"), user_id=OTHER)


def _found(blobs: list[bytes], secret: str) -> int:
    return sum(blob.count(secret.encode()) for blob in blobs if blob)


class Ledger:
    """A FAKE purge hook, as the cost ledger will implement one."""

    name = "ledger"

    def __init__(self) -> None:
        self.purged: list[str] = []

    def purge_user(self, user_id: str) -> int:
        self.purged.append(user_id)
        return 7


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"], indirect=True)
def test_purge_leaves_no_trace_of_the_user_at_rest(backend: Backend, tmp_path: Path) -> None:
    store = backend.open()
    index = tmp_path / "index"  # the semantic index's folder (vectors and question texts)
    semantic = SemanticSettings(embedder=HashingEmbedder(), threshold=0.5, index=index)
    cache = Cache(store, semantic=semantic)
    _fill(cache)
    cache.flush()
    assert cache.semantic is not None
    cache.semantic.save()
    before = _raw_bytes(backend, store, tmp_path)
    assert _found(before, EMAIL) and _found(before, CARD)  # the scan does see them
    files = [p.read_bytes() for p in index.rglob("*") if p.is_file()]
    assert _found(files, EMAIL)  # the index folder holds the questions too

    ledger = Ledger()
    report = purge_user(cache, EMAIL, [ledger])

    assert report.entries == 4 and report.scrubbed and report.error is None
    assert report.hooks == {"ledger": 7} and ledger.purged == [EMAIL]
    after = _raw_bytes(backend, store, tmp_path)
    after += [p.read_bytes() for p in index.rglob("*") if p.is_file()]
    assert _found(after, EMAIL) == 0, "the e-mail is still at rest"
    assert _found(after, CARD) == 0, "the card number is still at rest"
    assert _found(after, OTHER) > 0  # another user's entry stays
    assert cache.lookup_request(_request(f"I am {OTHER}: hello")) is not None
    assert cache.lookup_request(_request(f"I am {EMAIL}, card {CARD}: where is order 1?")) is None
    if backend.kind == "sqlite":
        wal = Path(store.path + "-wal")  # type: ignore[attr-defined]
        assert not wal.exists() or wal.stat().st_size == 0  # truncated


def test_a_failed_scrub_or_hook_is_reported_not_raised() -> None:
    class Broken(MemoryStore):
        def scrub(self) -> None:
            raise OSError("disk on fire")

    class BrokenHook(Ledger):
        def purge_user(self, user_id: str) -> int:
            raise RuntimeError("ledger down")

    cache = Cache(Broken())
    cache.set("k", 1, user_id=EMAIL)
    report = purge_user(cache, EMAIL, [BrokenHook()])
    assert report.entries == 1 and not report.scrubbed
    assert report.error is not None and "ledger down" in report.error
    assert cache.get("k") is None


def test_cli_purge_user_erases_and_is_audited(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cache.db"
    with Cache(url) as cache:
        _fill(cache)
    result = CliRunner().invoke(app, ["cache", "purge-user", EMAIL, "--cache", url])
    assert result.exit_code == 0, result.output
    assert "purged 4 entries" in result.output and "erased from disk" in result.output
    raw = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert _found(raw, EMAIL) == 0 and _found(raw, CARD) == 0
    log = open_audit(url)
    (record,) = log.read(action=AuditAction.PURGE_USER)
    log.close()
    assert record.target == {"user": subject(EMAIL)}  # the id itself is not kept
    assert record.detail["entries"] == 4 and record.detail["scrubbed"] is True
    assert record.actor.startswith("cli:")


def test_cli_purge_with_the_gateway_config_finds_entries_filed_under_hashed_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import os

    from thrifty.cache import ProtectSettings

    key = base64.b64encode(os.urandom(32)).decode()
    url = f"sqlite:///{tmp_path}/cache.db"
    with Cache(url, protect=ProtectSettings(encryption_key=key)) as cache:
        _fill(cache)
    config = tmp_path / "gw.yaml"
    config.write_text(f"cache:\n  url: {url}\n  encryption_key: os.environ/TEST_PURGE_KEY\n")
    monkeypatch.setenv("TEST_PURGE_KEY", key)
    without = CliRunner().invoke(app, ["cache", "purge-user", EMAIL, "--cache", url])
    assert "purged 0 entries" in without.output  # the raw id names nothing: ids are hashed
    result = CliRunner().invoke(app, ["cache", "purge-user", EMAIL, "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "purged 4 entries" in result.output
