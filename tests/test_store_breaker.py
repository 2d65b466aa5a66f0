"""The circuit breaker and URL redaction, on a fake flaky store (no server needed)."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from thrifty.cache import Cache
from thrifty.entry import Entry, Selector
from thrifty.errors import BackendUnavailableError, ConfigError, UnknownSchemeError
from thrifty.redact import redact_text, redact_url
from thrifty.store import open_store
from thrifty.store.breaker import BreakerPolicy, BreakerStore, split_breaker_url
from thrifty.store.health import BreakerState
from thrifty.store.memory import MemoryStore

SECRET_URL = "redis://:s3cret-pw@cache.internal:6379/0"


class FakeFlakyStore(MemoryStore):
    """A FAKE network store: a memory store that raises ConnectionError while ``down``."""

    outage_errors = (ConnectionError,)

    def __init__(self) -> None:
        super().__init__(SECRET_URL)
        self.down = False
        self.calls = 0
        self.reconnects = 0
        self.gate: threading.Event | None = None  # set: a get waits on it (a slow probe)

    def get(self, key: str) -> Entry | None:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(5)
        if self.down:
            raise ConnectionError(f"Error 111 connecting to {SECRET_URL}. Connection refused.")
        return super().get(key)

    def iter_entries(
        self, namespace: str | None = None, *, since: float | None = None
    ) -> Iterator[Entry]:
        if self.down:
            raise ConnectionError("refused")
        yield Entry("k", b"v", semantic=b"s")

    def reconnect(self) -> None:
        self.reconnects += 1


class FakeClock:
    """A FAKE monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def flaky() -> FakeFlakyStore:
    return FakeFlakyStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(flaky: FakeFlakyStore, clock: FakeClock) -> BreakerStore:
    return BreakerStore(flaky, BreakerPolicy(failures=3, cooldown=2.0), clock=clock)


def fail(store: BreakerStore, times: int) -> list[BackendUnavailableError]:
    errors = []
    for _ in range(times):
        with pytest.raises(BackendUnavailableError) as info:
            store.get("k")
        errors.append(info.value)
    return errors


def test_calls_pass_through_while_closed(breaker: BreakerStore, flaky: FakeFlakyStore) -> None:
    breaker.set(Entry("k", b"v"))
    got = breaker.get("k")
    assert got is not None and got.value == b"v"
    assert breaker.usage() == (1, flaky.usage()[1])
    assert [e.key for e in breaker.iter_entries()] == ["k"]
    assert breaker.invalidate(Selector(namespace="default")) == 1
    health = breaker.health()
    assert (health.up, health.state, health.errors, health.rejected) == (
        True,
        BreakerState.CLOSED,
        {},
        0,
    )


def test_opens_after_consecutive_failures_then_fails_without_calling(
    breaker: BreakerStore, flaky: FakeFlakyStore
) -> None:
    flaky.down = True
    errors = fail(breaker, 2)
    assert breaker.health().state is BreakerState.CLOSED  # two failures: not yet
    assert all(e.operation == "get" and e.retry_after is None for e in errors)
    assert isinstance(errors[0].__cause__, ConnectionError)  # translated at the boundary
    fail(breaker, 1)
    assert breaker.health().state is BreakerState.OPEN
    calls = flaky.calls
    rejected, times = [], []
    for _ in range(1000):
        started = time.perf_counter()
        rejected += fail(breaker, 1)
        times.append(time.perf_counter() - started)
    assert flaky.calls == calls  # the network is never touched while open
    # microseconds, not a timeout (the median: a busy machine may pause any single call)
    assert statistics.median(times) < 200e-6, statistics.median(times)
    assert rejected[0].retry_after == pytest.approx(2.0)
    assert "circuit open after 3 consecutive failures" in str(rejected[0])
    health = breaker.health()
    assert (health.up, health.errors, health.rejected) == (False, {"get": 3}, 1000)
    assert health.last_error is not None and "Connection refused" in health.last_error


def test_a_success_resets_the_count(breaker: BreakerStore, flaky: FakeFlakyStore) -> None:
    for _ in range(3):
        flaky.down = True
        fail(breaker, 2)
        flaky.down = False
        assert breaker.get("k") is None
    assert breaker.health().state is BreakerState.CLOSED
    assert breaker.health().errors == {"get": 6}


def test_half_open_probe_closes_on_success(
    breaker: BreakerStore, flaky: FakeFlakyStore, clock: FakeClock
) -> None:
    flaky.down = True
    fail(breaker, 3)
    clock.now += 1.9
    fail(breaker, 1)  # still cooling down
    assert flaky.reconnects == 0
    flaky.down = False
    clock.now += 0.2
    assert breaker.get("k") is None  # the probe reaches the store and succeeds
    assert flaky.reconnects == 1  # stale connections dropped before the probe
    health = breaker.health()
    assert (health.state, health.up, health.consecutive_failures) == (BreakerState.CLOSED, True, 0)


def test_failed_probe_reopens_for_another_cooldown(
    breaker: BreakerStore, flaky: FakeFlakyStore, clock: FakeClock
) -> None:
    flaky.down = True
    fail(breaker, 3)
    clock.now += 2.0
    calls = flaky.calls
    fail(breaker, 1)  # the probe
    assert flaky.calls == calls + 1
    assert breaker.health().state is BreakerState.OPEN
    fail(breaker, 5)
    assert flaky.calls == calls + 1  # no second probe before the next cooldown ends
    assert breaker.health().retry_after == pytest.approx(2.0)


def test_only_one_probe_at_a_time(
    breaker: BreakerStore, flaky: FakeFlakyStore, clock: FakeClock
) -> None:
    flaky.down = True
    fail(breaker, 3)
    flaky.down = False
    clock.now += 2.0
    flaky.gate = threading.Event()
    probe = threading.Thread(target=breaker.get, args=("k",))
    probe.start()
    deadline = time.monotonic() + 5
    while flaky.calls < 4:  # wait until the probe is inside the store
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert breaker.health().state is BreakerState.HALF_OPEN
    fail(breaker, 3)  # the others still fail fast while the probe runs
    flaky.gate.set()
    probe.join(5)
    flaky.gate = None
    assert breaker.health().state is BreakerState.CLOSED
    assert breaker.get("k") is None


def test_errors_that_are_not_outages_pass_through_and_do_not_open(
    breaker: BreakerStore,
) -> None:
    for _ in range(5):
        with pytest.raises(AttributeError):
            breaker.set("not an entry")  # type: ignore[arg-type]
    health = breaker.health()
    assert (health.state, health.errors["set"]) == (BreakerState.CLOSED, 5)


def test_iter_entries_is_guarded(breaker: BreakerStore, flaky: FakeFlakyStore) -> None:
    flaky.down = True
    for _ in range(3):
        with pytest.raises(BackendUnavailableError):
            list(breaker.iter_entries())
    with pytest.raises(BackendUnavailableError, match="circuit open"):
        list(breaker.iter_entries())
    assert breaker.health().errors == {"iter_entries": 3}


def test_cache_over_an_open_breaker_misses_and_skips_writes_at_once(
    breaker: BreakerStore, flaky: FakeFlakyStore
) -> None:
    cache = Cache(breaker)
    cache.set("k", "v")
    flaky.down = True
    fail(breaker, 3)
    times = []
    for _ in range(100):
        started = time.perf_counter()
        assert cache.lookup("k") is None
        assert cache.set("k2", "w") is None
        value, status = cache.get_or_compute("k3", lambda: "computed")
        assert (value, status) == ("computed", "miss")
        times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.005, statistics.median(times)
    assert cache.stats().errors >= 300


def test_backend_extras_reach_the_wrapped_store(breaker: BreakerStore) -> None:
    breaker.set(Entry("k", b"v"))
    assert "k" in breaker._data  # a backend attribute the breaker does not define
    assert breaker.blocking is False and breaker.shared is False  # copied from the store


def test_local_stores_get_no_breaker(tmp_path: object) -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    health = store.health()
    assert (health.up, health.state, health.backend) == (True, None, "memory://")


def test_breaker_policy_from_the_url() -> None:
    base = BreakerPolicy()
    url, policy = split_breaker_url(
        "redis://h:6379/0?prefix=p:&breaker_failures=5&breaker_cooldown=0.25", base
    )
    assert url == "redis://h:6379/0?prefix=p%3A"
    assert policy == BreakerPolicy(failures=5, cooldown=0.25)
    assert split_breaker_url("redis://h/0", base) == ("redis://h/0", base)
    for bad in ("breaker_failures=0", "breaker_cooldown=-1", "breaker_failures=x"):
        with pytest.raises(ConfigError):
            split_breaker_url(f"redis://h/0?{bad}", base)


# ------------------------------------------------------------------ redaction
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:secret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://user:p%40ss@cache/0?prefix=x", "rediss://user:***@cache/0?prefix=x"),
        ("postgresql://app:s3@cr:t@db:5432/prod", "postgresql://app:***@db:5432/prod"),
        ("postgresql://app@db/prod", "postgresql://app@db/prod"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        (
            "failed: 'postgres://u:pw@h/db' and host=db password='a b' user=x",
            "failed: 'postgres://u:***@h/db' and host=db password=*** user=x",
        ),
        ("db?sslmode=require&password=hunter2&x=1", "db?sslmode=require&password=***&x=1"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_errors_and_health_never_show_the_password(
    breaker: BreakerStore, flaky: FakeFlakyStore
) -> None:
    assert "s3cret-pw" not in redact_url(SECRET_URL)
    flaky.down = True
    shown = [str(e) for e in fail(breaker, 4)]
    shown += [repr(breaker), repr(breaker.health())]
    shown.append(str(UnknownSchemeError("ftp://u:s3cret-pw@h/x", ("redis",))))
    error = BackendUnavailableError(SECRET_URL, f"cannot reach {SECRET_URL}")
    shown += [str(error), error.url, error.reason]
    assert all("s3cret-pw" not in text for text in shown), shown
    assert "redis://:***@cache.internal:6379/0" in shown[0]
