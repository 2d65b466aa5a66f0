"""The Store protocol, run unchanged against memory, SQLite, Redis and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from _procs import write_many
from conftest import Backend
from thrifty.entry import Entry, Selector
from thrifty.errors import BackendUnavailableError, ConfigError, UnknownSchemeError
from thrifty.store import Store, open_store
from thrifty.store.sqlite import path_from_url

MakeEntry = Callable[..., Entry]


def test_set_get_delete_roundtrip(store: Store, make_entry: MakeEntry) -> None:
    entry = make_entry(
        "k1",
        b't1{"a":1}',
        namespace="support",
        user_id="u1",
        tags=("doc:1", "faq"),
        model="gpt-4o-mini",
        model_version="2024-07",
        expires_at=time.time() + 60,
        tokens_in=12,
        tokens_out=34,
        cost_usd=0.0012,
        latency_ms=250.5,
    )
    store.set(entry)
    got = store.get("k1")
    assert got is not None
    assert got.key == entry.key
    assert got.value == entry.value
    for name in ("namespace", "user_id", "model", "model_version", "tokens_in", "tokens_out"):
        assert getattr(got, name) == getattr(entry, name), name
    assert got.tags == ("doc:1", "faq")
    assert got.created_at == pytest.approx(entry.created_at)
    assert got.expires_at == pytest.approx(entry.expires_at)
    assert got.cost_usd == pytest.approx(0.0012)
    assert got.latency_ms == pytest.approx(250.5)
    assert store.get("missing") is None
    assert store.delete("k1") is True
    assert store.get("k1") is None
    assert store.delete("k1") is False


def test_set_replaces_and_keeps_usage_exact(store: Store, make_entry: MakeEntry) -> None:
    store.set(make_entry("k", b"t1" + b"a" * 100, tags=("old",)))
    store.set(make_entry("k", b"t1" + b"b" * 10, tags=("new",)))
    got = store.get("k")
    assert got is not None and got.value == b"t1" + b"b" * 10
    assert store.usage() == (1, len(b"t1" + b"b" * 10) + 1)
    assert store.invalidate(Selector(tag="old")) == 0  # the old tag went with the old value
    assert store.invalidate(Selector(tag="new")) == 1


def test_set_many_stores_each_entry_with_its_tags(store: Store, make_entry: MakeEntry) -> None:
    store.set(make_entry("k0", b"t1old", tags=("old",)))
    store.set_many([make_entry(f"k{i}", b"t1v%d" % i, tags=(f"doc:{i}",)) for i in range(5)])
    assert [store.get(f"k{i}").value for i in range(5)] == [b"t1v%d" % i for i in range(5)]  # type: ignore[union-attr]
    assert store.usage()[0] == 5
    assert store.invalidate(Selector(tag="old")) == 0  # k0's old tag went with its old value
    assert store.invalidate(Selector(tag="doc:3")) == 1
    store.set_many([])


def test_set_many_enforces_the_limits(backend: Backend, make_entry: MakeEntry) -> None:
    store = backend.open(max_entries=3)
    store.set_many([make_entry(f"k{i}") for i in range(5)])
    assert store.usage()[0] == 3


def test_expired_entries_are_never_returned(store: Store, make_entry: MakeEntry) -> None:
    now = time.time()
    store.set(make_entry("past", expires_at=now - 1))
    store.set(make_entry("soon", expires_at=now + 0.3))
    store.set(make_entry("forever"))
    assert store.get("past") is None
    assert store.get("soon") is not None
    time.sleep(0.4)
    assert store.get("soon") is None
    assert store.get("forever") is not None
    assert store.usage()[0] == 1


def test_invalidate_by_each_field(store: Store, make_entry: MakeEntry) -> None:
    store.set(make_entry("a", namespace="n1", model="m1", model_version="v1", user_id="u1"))
    store.set(make_entry("b", namespace="n1", model="m1", model_version="v2", user_id="u2"))
    store.set(make_entry("c", namespace="n2", model="m2", model_version="v1", user_id="u1"))
    store.set(make_entry("d", namespace="n2", tags=("doc:1",)))

    assert store.invalidate(Selector(model_version="v2")) == 1
    assert store.get("b") is None
    assert store.invalidate(Selector(user_id="u1")) == 2
    assert store.get("a") is None and store.get("c") is None
    assert store.invalidate(Selector(tag="doc:1")) == 1
    assert store.usage() == (0, 0)

    store.set(make_entry("e", namespace="n3"))
    store.set(make_entry("f", namespace="n4", model="m9"))
    assert store.invalidate(Selector(namespace="n3")) == 1
    assert store.invalidate(Selector(model="m9")) == 1
    assert store.invalidate(Selector(namespace="nobody")) == 0


def test_invalidate_combines_fields_with_and(store: Store, make_entry: MakeEntry) -> None:
    store.set(make_entry("a", namespace="n1", model="m", model_version="v1", tags=("t",)))
    store.set(make_entry("b", namespace="n1", model="m", model_version="v2", tags=("t",)))
    store.set(make_entry("c", namespace="n2", model="m", model_version="v1", tags=("t",)))
    store.set(make_entry("d", namespace="n1", model="other", model_version="v1"))
    assert store.invalidate(Selector(model="m", model_version="v1")) == 2
    assert [k for k in "abcd" if store.get(k)] == ["b", "d"]
    assert store.invalidate(Selector(namespace="n1", tag="t")) == 1
    assert [k for k in "abcd" if store.get(k)] == ["d"]


def test_tag_invalidation_is_exact_match(store: Store, make_entry: MakeEntry) -> None:
    store.set(make_entry("one", tags=("doc:1",)))
    store.set(make_entry("ten", tags=("doc:10",)))
    store.set(make_entry("pct", tags=("doc%",)))
    store.set(make_entry("quote", tags=('a"b', "x,y")))
    assert store.invalidate(Selector(tag="doc")) == 0
    assert store.invalidate(Selector(tag="doc%")) == 1
    assert store.invalidate(Selector(tag="doc:1")) == 1
    assert store.get("ten") is not None
    assert store.invalidate(Selector(tag="x")) == 0
    assert store.invalidate(Selector(tag="x,y")) == 1


def test_eviction_by_count_drops_oldest(backend: Backend, make_entry: MakeEntry) -> None:
    store = backend.open(max_entries=3)
    for i in range(5):
        store.set(make_entry(f"k{i}"))
    assert [store.get(f"k{i}") is not None for i in range(5)] == [False, False, True, True, True]
    assert store.usage()[0] == 3


def test_eviction_by_bytes(backend: Backend, make_entry: MakeEntry) -> None:
    store = backend.open(max_bytes=250)
    for i in range(5):
        store.set(make_entry(f"k{i}", b"t1" + b"x" * 96))  # 98 bytes value + 2 bytes key
    entries, size = store.usage()
    assert (entries, size) == (2, 200)
    assert store.get("k4") is not None and store.get("k2") is None


def test_usage_per_namespace(store: Store, make_entry: MakeEntry) -> None:
    store.set(make_entry("a", b"t1aaaa", namespace="x"))
    store.set(make_entry("b", b"t1bb", namespace="y"))
    store.set(make_entry("c", b"t1", namespace="y", expires_at=time.time() - 1))
    assert store.usage("x") == (1, 7)
    assert store.usage("y") == (1, 5)
    assert store.usage() == (2, 12)
    assert store.usage("nobody") == (0, 0)


def test_counters_sum_per_namespace(store: Store) -> None:
    store.add_counters("a", {"hits": 2, "usd_saved": 0.5})
    store.add_counters("a", {"hits": 1, "misses": 4})
    store.add_counters("b", {"hits": 10, "usd_saved": 0.25})
    assert store.read_counters("a") == {"hits": 3, "misses": 4, "usd_saved": 0.5}
    assert store.read_counters() == {"hits": 13, "misses": 4, "usd_saved": 0.75}
    assert store.read_counters("nobody") == {}


def test_leases(store: Store) -> None:
    assert store.acquire_lease("job", "alice", 0.3)
    assert not store.acquire_lease("job", "bob", 0.3)
    assert store.acquire_lease("job", "alice", 0.3)  # the holder may renew
    store.release_lease("job", "bob")  # not bob's: nothing happens
    assert not store.acquire_lease("job", "bob", 0.3)
    store.release_lease("job", "alice")
    assert store.acquire_lease("job", "bob", 0.3)
    time.sleep(0.4)  # bob's lease expires
    assert store.acquire_lease("job", "carol", 5)
    assert store.acquire_lease("other", "bob", 5)  # leases are independent


def test_clear_removes_entries_counters_and_leases(store: Store, make_entry: MakeEntry) -> None:
    store.set(make_entry("a", tags=("t",)))
    store.add_counters("default", {"hits": 1})
    store.acquire_lease("l", "alice", 60)
    store.clear()
    assert store.get("a") is None
    assert store.usage() == (0, 0)
    assert store.read_counters() == {}
    assert store.acquire_lease("l", "bob", 60)
    store.set(make_entry("b", tags=("t",)))  # still usable afterwards
    assert store.invalidate(Selector(tag="t")) == 1


def test_iter_entries_lists_semantic_records(store: Store, make_entry: MakeEntry) -> None:
    store.set(make_entry("plain"))
    store.set(make_entry("s1", namespace="a", semantic=b"rec1"))
    store.set(make_entry("s2", namespace="b", semantic=b"rec2"))
    store.set(make_entry("gone", namespace="a", semantic=b"x", expires_at=time.time() - 1))
    listed = {e.key: e.semantic for e in store.iter_entries()}
    assert listed == {"s1": b"rec1", "s2": b"rec2"}
    assert [e.key for e in store.iter_entries("a")] == ["s1"]
    s2 = store.get("s2")
    assert s2 is not None
    assert [e.key for e in store.iter_entries(since=s2.created_at)] == ["s2"]


def test_several_processes_write_at_once(shared_backend: Backend) -> None:
    store = shared_backend.open()
    workers, per_worker = 4, 500 if shared_backend.kind == "sqlite" else 250
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(workers)
    procs = [
        ctx.Process(target=write_many, args=(shared_backend.url, w, per_worker, start))
        for w in range(workers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert store.usage()[0] == workers * per_worker
    for w in range(workers):
        for i in range(0, per_worker, 7):
            got = store.get(f"w{w}-{i}")
            assert got is not None and got.value == f"t1[{w},{i}]".encode()
    assert store.invalidate(Selector(tag="w2")) == per_worker


def test_unknown_scheme() -> None:
    with pytest.raises(UnknownSchemeError, match="ftp://"):
        open_store("ftp://example.com/x")


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:1/0",
        "postgresql://postgres@127.0.0.1:1/test",
        "sqlite:////proc/no/such/dir/cache.db",
    ],
)
def test_unreachable_backend_fails_fast_with_a_typed_error(url: str) -> None:
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="unreachable"):
        open_store(url)
    assert time.monotonic() - started < 4


def test_sqlite_url_paths(tmp_path: Path) -> None:
    assert path_from_url("sqlite:///.thrifty/cache.db") == ".thrifty/cache.db"
    assert path_from_url("sqlite:////tmp/x.db") == "/tmp/x.db"
    with pytest.raises(ConfigError):
        path_from_url("sqlite:///:memory:")
    nested = tmp_path / "a" / "b" / "c.db"
    store = open_store(f"sqlite:///{nested}")
    assert nested.exists()
    store.close()


def test_thrifty_opens_sqlite_files_through_one_library_only() -> None:
    """The SQLite store and the batch journal use APSW's SQLite. The standard library's
    ``sqlite3`` links another copy of SQLite, whose POSIX locks do not see APSW's: opening the
    same file through both in one process can corrupt it. Nothing in thrifty may import it."""
    import thrifty

    package = Path(thrifty.__file__).parent
    importers = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(r"^\s*(import sqlite3|from sqlite3 import)", path.read_text(), re.M)
    ]
    assert importers == []


def test_failed_sqlite_write_rolls_back_and_the_store_keeps_working(
    tmp_path: Path, make_entry: MakeEntry
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    store.set(make_entry("a"))
    with pytest.raises(RuntimeError), store._write() as cur:  # type: ignore[attr-defined]
        cur.execute("DELETE FROM entries")
        raise RuntimeError("fails mid-transaction")
    assert store.get("a") is not None  # the delete was rolled back
    store.set(make_entry("b"))  # no transaction was left open
    assert store.get("b") is not None
    store.close()
