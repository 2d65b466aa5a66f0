"""Key rotation (issue 12): ``thrifty cache rotate-key`` re-seals every entry sealed by an old
key (and any entry stored before encryption) with the current key, semantic records included,
on every backend; afterwards the old key is no longer needed; the rotation is audited."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import Backend
from thrifty.audit import AuditAction, open_audit
from thrifty.cache import Cache, ProtectSettings, SemanticSettings
from thrifty.cli import app
from thrifty.safety.crypto import Keyring, is_encrypted
from thrifty.safety.rotate import reseal
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.store.base import Store
from thrifty.store.sealed import SealedStore


def _secret() -> str:
    return base64.b64encode(os.urandom(32)).decode()


OLD, NEW = f"k1:{_secret()}", f"k2:{_secret()}"


def _request(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def _answer(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


def _semantic() -> SemanticSettings:
    return SemanticSettings(embedder=HashingEmbedder(), threshold=0.5, index=None)


def _fill(store: Store) -> None:
    plain = Cache(store)  # written before encryption was switched on
    plain.set("plain-1", {"answer": "stored in the clear"})
    old = Cache(store, protect=ProtectSettings(encryption_key=OLD), semantic=_semantic())
    for n in range(3):
        old.set_request(_request(f"where is order {n}?"), _answer(f"order {n} ships"))
    old.set("exact-only", {"answer": 42}, user_id="u-1")


def _key_ids(store: Store, keyring: Keyring) -> set[str]:
    """The key ids of every blob the backend holds (values and semantic records)."""
    ids = set()
    for key in store.iter_keys():
        entry = store.get(key)
        assert entry is not None and is_encrypted(entry.value), key
        ids.add(keyring.key_id_of(entry.value))
    for entry in store.iter_entries():
        assert entry.semantic is not None and is_encrypted(entry.semantic)
        ids.add(keyring.key_id_of(entry.semantic))
    return ids


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis", "postgres"], indirect=True)
def test_reseal_moves_every_entry_to_the_current_key(backend: Backend) -> None:
    store = backend.open()
    _fill(store)
    keyring = Keyring.from_config(NEW, [OLD])
    seen: list[int] = []

    report = reseal(store, keyring, progress=seen.append)

    assert report.to_dict() == {"scanned": 5, "resealed": 5, "failed": 0}
    assert len(seen) == 5
    assert _key_ids(store, keyring) == {"k2"}
    assert len(list(store.iter_entries())) == 3  # the semantic records survived
    only_new = Cache(store, protect=ProtectSettings(encryption_key=NEW), semantic=_semantic())
    assert only_new.get("plain-1") == {"answer": "stored in the clear"}
    assert only_new.get("exact-only") == {"answer": 42}
    hit = only_new.lookup_request(_request("where is order 2?"))
    assert hit is not None and hit.value == _answer("order 2 ships")
    sealed = SealedStore(store, Keyring.from_config(NEW))  # opens semantic records with NEW only
    assert all(e.semantic and b"where is order" in e.semantic for e in sealed.iter_entries())
    again = reseal(store, keyring)
    assert again.resealed == 0 and again.scanned == 5  # nothing left under the old key


def test_an_entry_no_key_opens_is_counted_and_left_alone() -> None:
    from thrifty.store.memory import MemoryStore

    store = MemoryStore()
    Cache(store, protect=ProtectSettings(encryption_key=f"lost:{_secret()}")).set("k", 1)
    report = reseal(store, Keyring.from_config(NEW, [OLD]))
    assert report.to_dict() == {"scanned": 1, "resealed": 0, "failed": 1}


def test_cli_rotate_key_reads_the_keys_from_the_config_and_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/cache.db"
    from thrifty.store.sqlite import SQLiteStore

    store = SQLiteStore(url)
    _fill(store)
    config = tmp_path / "gw.yaml"
    config.write_text(
        "cache:\n"
        f"  url: {url}\n"
        "  encryption_key: os.environ/TEST_NEW_KEY\n"
        "  old_encryption_keys: [os.environ/TEST_OLD_KEY]\n"
    )
    monkeypatch.setenv("TEST_NEW_KEY", NEW)
    monkeypatch.setenv("TEST_OLD_KEY", OLD)

    result = CliRunner().invoke(app, ["cache", "rotate-key", "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert "re-encrypted 5 of 5 entries under key k2" in result.output
    assert _key_ids(store, Keyring.from_config(NEW)) == {"k2"}
    log = open_audit(url)
    (record,) = log.read(action=AuditAction.ROTATE_KEY)
    log.close()
    assert record.target == {"key_id": "k2", "old_key_ids": ["k1"]}
    assert record.detail == {"scanned": 5, "resealed": 5, "failed": 0}
    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*.db*"))
    assert NEW.split(":")[1].encode() not in raw and OLD.split(":")[1].encode() not in raw

    no_key = tmp_path / "plain.yaml"
    no_key.write_text(f"cache:\n  url: {url}\n")
    refused = CliRunner().invoke(app, ["cache", "rotate-key", "--config", str(no_key)])
    assert refused.exit_code == 2 and "encryption_key" in refused.output
