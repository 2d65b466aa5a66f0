"""A circuit breaker around a network store: a dead backend costs microseconds, not timeouts.

:func:`~thrifty.store.open_store` wraps every shared backend (Redis, PostgreSQL) in a
:class:`BreakerStore`. Calls pass straight through while the backend answers. After
``failures`` consecutive outage errors (the backend's :attr:`~Store.outage_errors`: refused,
reset, timed out) the breaker opens: every call then raises
:class:`~thrifty.errors.BackendUnavailableError` at once, without touching the network, and the
:class:`~thrifty.cache.Cache` turns that into a miss or a skipped write (fail-open). After
``cooldown`` seconds one call goes through as a probe (the pool's stale connections dropped
first); its success closes the breaker, its failure opens it for another cooldown. So a request
never waits on a dead backend longer than one bounded timeout, and hits come back within about
a cooldown of the backend's return.

Errors that are not outages (a bad argument, a constraint violation) pass through unchanged and
do not move the breaker; every error is counted per operation for
``thrifty_backend_errors_total``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from thrifty.entry import Entry, Selector
from thrifty.errors import BackendUnavailableError, ConfigError
from thrifty.redact import redact_text, redact_url
from thrifty.store._url import pop_query
from thrifty.store.base import Store
from thrifty.store.health import BackendHealth, BreakerState, ErrorListener
from thrifty.store.wrapper import StoreWrapper

log = logging.getLogger("thrifty.store.breaker")
T = TypeVar("T")
CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker opens and how long it stays open.

    Set in a URL as ``?breaker_failures=3&breaker_cooldown=1.0`` or passed to
    ``open_store(url, breaker=BreakerPolicy(...))``.
    """

    failures: int = 3
    """Consecutive outage errors that open the breaker (one error may be a stale connection)."""
    cooldown: float = 1.0
    """Seconds the breaker stays open before one probe call goes through."""

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise ConfigError("breaker_failures must be at least 1")
        if not self.cooldown > 0:  # also refuses NaN
            raise ConfigError("breaker_cooldown must be positive seconds")


#: URL query parameter -> (BreakerPolicy field, parser); removed before the backend sees the URL.
URL_OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "breaker_failures": ("failures", int),
    "breaker_cooldown": ("cooldown", float),
}


def split_breaker_url(url: str, base: BreakerPolicy) -> tuple[str, BreakerPolicy]:
    """(the URL without ``breaker_*`` parameters, ``base`` with the URL's values applied)."""
    url, ours = pop_query(url, URL_OPTIONS)
    if not ours:
        return url, base
    values: dict[str, Any] = {"failures": base.failures, "cooldown": base.cooldown}
    for name, raw in ours.items():
        field_name, parse = URL_OPTIONS[name]
        try:
            values[field_name] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"invalid {name}={raw!r} in the cache URL") from exc
    return url, BreakerPolicy(**values)


class BreakerStore(StoreWrapper):
    """A :class:`Store` that fails fast while its backend is down; see the module docstring.

    Args:
        inner: the network store to guard.
        policy: when to open and how long to stay open.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        inner: Store,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(inner)
        self.policy = policy or BreakerPolicy()
        self._inner_get = inner.get
        self._name = redact_url(inner.url)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._last_error: str | None = None
        self._refusal = ""
        self._last_error_at: float | None = None
        self._errors: dict[str, int] = {}
        self._rejected = 0
        self.listener: ErrorListener | None = None
        """Told of every error (``listener(operation)``): the gateway's metrics."""

    def __getattr__(self, name: str) -> Any:
        # Reached only for names this class lacks: a backend's extras (``table``,
        # ``drop_tables``…) keep working on the wrapped store. They bypass the breaker.
        if name == "inner":  # not set yet (during __init__ or unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    # ------------------------------------------------------------------ the guard
    def _run(self, op: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` under the breaker: the hot path is one attribute test per side."""
        probe = self._state is not CLOSED and self._admit(op)
        try:
            result = fn(*args)
        except self.outage_errors as exc:
            raise self._failed(op, exc, probe) from exc
        except BaseException as exc:
            self._inconclusive(op, exc, probe)
            raise
        if probe or self._failures:
            self._succeeded(probe)
        return result

    def _admit(self, op: str) -> bool:
        """True when this call is the half-open probe; raises when the breaker refuses it."""
        with self._lock:
            if self._state is CLOSED:
                return False
            now = self._clock()
            retry_after = self._opened_at + self.policy.cooldown - now
            if self._state is OPEN and retry_after <= 0:
                self._state = HALF_OPEN
            if self._state is HALF_OPEN and not self._probing:
                self._probing = True
                probe = True
            else:
                self._rejected += 1
                probe = False
                reason = self._refusal
        if not probe:
            raise BackendUnavailableError(
                self._name, reason, operation=op, retry_after=max(0.0, retry_after)
            )
        try:
            self.inner.reconnect()  # connections pooled before the outage are dead
        except Exception as exc:  # the probe itself will tell whether the backend is back
            log.debug("reconnect before probing %s failed: %s", self._name, exc)
        return True

    def _failed(self, op: str, exc: BaseException, probe: bool) -> BackendUnavailableError:
        message = redact_text(f"{type(exc).__name__}: {exc}".strip())
        with self._lock:
            self._errors[op] = self._errors.get(op, 0) + 1
            self._failures += 1
            self._last_error, self._last_error_at = message, time.time()
            opened = probe or (self._state is CLOSED and self._failures >= self.policy.failures)
            if opened:
                self._state, self._opened_at, self._probing = OPEN, self._clock(), False
                # Built once per opening, not on each of the calls it will refuse.
                self._refusal = (
                    f"circuit open after {self._failures} consecutive failures (last: {message})"
                )
        if self.listener is not None:
            self.listener(op)
        if opened:
            log.warning(
                "cache backend %s is down (%s during %s); failing fast for %.1fs",
                self._name, message, op, self.policy.cooldown,
            )  # fmt: skip
        return BackendUnavailableError(self.url, message, operation=op)

    def _inconclusive(self, op: str, exc: BaseException, probe: bool) -> None:
        """A non-outage error (or a cancelled call): counted, but the breaker does not move;
        a probe that ends so hands the probe to the next call."""
        with self._lock:
            if isinstance(exc, Exception):
                self._errors[op] = self._errors.get(op, 0) + 1
            if probe:
                self._probing = False
        if self.listener is not None and isinstance(exc, Exception):
            self.listener(op)

    def _succeeded(self, probe: bool) -> None:
        with self._lock:
            if probe:
                self._state, self._probing = CLOSED, False
            elif self._state is not CLOSED:
                return  # admitted before the breaker opened: the probe decides, not this call
            self._failures = 0
        if probe:
            log.warning("cache backend %s is back up", self._name)

    # ------------------------------------------------------------------ health
    def health(self) -> BackendHealth:
        with self._lock:
            state = self._state
            retry_after = None
            if state is OPEN:
                retry_after = max(0.0, self._opened_at + self.policy.cooldown - self._clock())
            return BackendHealth(
                backend=self._name,
                up=state is CLOSED,
                state=state,
                consecutive_failures=self._failures,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
                retry_after=retry_after,
                errors=dict(self._errors),
                rejected=self._rejected,
            )

    # ---------------------------------------------------------- the Store protocol
    def get(self, key: str) -> Entry | None:
        # The hit path: _run's steps written out, without its extra call and argument tuple.
        if self._state is not CLOSED:
            return self._run("get", self._inner_get, key)
        try:
            entry = self._inner_get(key)
        except self.outage_errors as exc:
            raise self._failed("get", exc, False) from exc
        except BaseException as exc:
            self._inconclusive("get", exc, False)
            raise
        if self._failures:
            self._succeeded(False)
        return entry

    def set(self, entry: Entry) -> None:
        self._run("set", self.inner.set, entry)

    def set_many(self, entries: Sequence[Entry]) -> None:
        self._run("set", self.inner.set_many, entries)

    def delete(self, key: str) -> bool:
        return self._run("delete", self.inner.delete, key)

    def invalidate(self, selector: Selector) -> int:
        return self._run("invalidate", self.inner.invalidate, selector)

    def clear(self) -> None:
        self._run("clear", self.inner.clear)

    def usage(self, namespace: str | None = None) -> tuple[int, int]:
        return self._run("usage", self.inner.usage, namespace)

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        return self._run("acquire_lease", self.inner.acquire_lease, name, holder, ttl)

    def release_lease(self, name: str, holder: str) -> None:
        self._run("release_lease", self.inner.release_lease, name, holder)

    def add_counters(self, namespace: str, counters: Mapping[str, float]) -> None:
        self._run("add_counters", self.inner.add_counters, namespace, counters)

    def read_counters(self, namespace: str | None = None) -> dict[str, float]:
        return self._run("read_counters", self.inner.read_counters, namespace)

    def iter_entries(
        self, namespace: str | None = None, *, since: float | None = None
    ) -> Iterator[Entry]:
        probe = self._state is not CLOSED and self._admit("iter_entries")
        try:
            yield from self.inner.iter_entries(namespace, since=since)
        except self.outage_errors as exc:
            raise self._failed("iter_entries", exc, probe) from exc
        except BaseException as exc:  # GeneratorExit too: the caller stopped reading
            self._inconclusive("iter_entries", exc, probe)
            raise
        if probe or self._failures:
            self._succeeded(probe)

    def ping(self) -> None:
        self._run("ping", self.inner.ping)

    def __repr__(self) -> str:
        return f"BreakerStore({self.inner!r}, {self.policy})"


def observe_errors(store: Store, listener: ErrorListener) -> int:
    """Tell ``listener`` of every error of the breakers in ``store``'s wrappers (a sealed
    store's inner breaker too); returns how many breakers were found (0: a local store)."""
    found = 0
    seen: Store | None = store
    while isinstance(seen, Store):
        if isinstance(seen, BreakerStore):
            seen.listener = listener
            found += 1
        seen = seen.__dict__.get("inner")  # not __getattr__: a backend has no inner
    return found


__all__ = [
    "URL_OPTIONS",
    "BreakerPolicy",
    "BreakerStore",
    "observe_errors",
    "split_breaker_url",
]
