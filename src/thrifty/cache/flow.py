"""``get_or_compute`` written once: a generator of steps, driven by a sync and an async runner.

The coalescing logic (look up, join the flight or lead it, take the cross-process lease or
poll for the holder's answer, compute, store, release) is one generator, :func:`compute_flow`.
It yields :class:`Step` values and never blocks; :func:`run` performs each step by blocking
calls and :func:`arun` by awaits, the way httpx drives one auth flow from ``sync_auth_flow`` and
``async_auth_flow``. The two faces cannot drift: a waiter that takes over from a failed leader
simply goes round the loop again with the same :class:`~thrifty.cache.types.ComputeCall`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import Future
from enum import Enum, auto
from typing import Any, TypeVar

from thrifty.cache.coalesce import LeaderGone, Leases, SingleFlight, poll_delays
from thrifty.cache.types import CacheStatus, ComputeCall, served
from thrifty.cache.write_behind import Deferred, WriteBehind
from thrifty.errors import CoalesceTimeoutError

R = TypeVar("R")


class Op(Enum):
    """What a step asks its runner to do (and what the runner sends back)."""

    LOOKUP = auto()  # arg: ComputeCall -> Hit | None (counted, semantic included)
    WAIT = auto()  # arg: the leader's Future -> its value (raises as it does)
    TAKE_LEASE = auto()  # arg: lease name -> bool
    SLEEP = auto()  # arg: seconds -> None
    PEEK = auto()  # arg: key -> Hit | None (not counted)
    COMPUTE = auto()  # arg: ComputeCall -> the computed value
    STORE = auto()  # arg: (key, value, options) -> None
    RELEASE = auto()  # arg: lease name -> None


Step = tuple[Op, Any]
Flow = Generator[Step, Any, R]
Result = tuple[Any, CacheStatus]


def compute_flow(
    call: ComputeCall,
    flights: SingleFlight,
    leases: Leases,
    timeout: float,
    behind: WriteBehind | None = None,
) -> Flow[Result]:
    """The value for ``call`` after its lookup missed, computed once for identical callers.

    (The caller does the first lookup itself, so that a hit costs no flow.)

    Args:
        timeout: seconds a waiter waits for its leader.
        behind: the write-behind queue, when the runner answers before storing.
    """
    while True:
        future, leader = flights.join(call.key)
        if leader:
            return (yield from _lead(call, future, flights, leases, behind))
        try:
            return (yield Op.WAIT, future), CacheStatus.COALESCED
        except TimeoutError as exc:
            raise CoalesceTimeoutError(f"waited {timeout}s for {call.key[:16]}") from exc
        except LeaderGone:  # the leader is gone: take over the very same call, looking first
            hit = yield Op.LOOKUP, call
            if hit is not None:
                return served(hit, call.on_hit)


def _lead(
    call: ComputeCall,
    future: Future[Any],
    flights: SingleFlight,
    leases: Leases,
    behind: WriteBehind | None,
) -> Flow[Result]:
    """Compute as the flight's leader: take the cross-process lease (or find the holder's
    answer), compute, store; the flight ends when the answer is stored."""
    lease = f"coalesce:{call.key}" if leases.shared else ""
    leased = False
    deferred: Deferred | None = None
    try:
        if lease:  # without shared leases there is nothing to take or release
            leased = yield Op.TAKE_LEASE, lease
            deadline = time.monotonic() + leases.ttl
            delays = poll_delays()
            while not leased and time.monotonic() < deadline:
                yield Op.SLEEP, next(delays)
                hit = yield Op.PEEK, call.key
                if hit is not None:
                    future.set_result(hit.value)
                    return hit.value, CacheStatus.COALESCED
                leased = yield Op.TAKE_LEASE, lease
                if leased:  # the holder may have stored and released since the last peek
                    hit = yield Op.PEEK, call.key
                    if hit is not None:
                        future.set_result(hit.value)
                        return hit.value, CacheStatus.COALESCED
        started = time.perf_counter()
        value = yield Op.COMPUTE, call
        if call.store:
            options = call.write_options(value, (time.perf_counter() - started) * 1000)
            if behind is not None and behind.accepts():  # the background thread stores it
                options.pop("built", None)  # a memo of built objects is for lookups in hand
                deferred = Deferred(call.key, value, options, lease if leased else None)
                leased = False  # released once stored
            else:
                yield Op.STORE, (call.key, value, options)
        future.set_result(value)
        return value, CacheStatus.MISS
    except BaseException as exc:  # waiters never inherit a cancellation: one takes over
        future.set_exception(exc if isinstance(exc, Exception) else LeaderGone())
        raise
    finally:
        if leased:
            yield Op.RELEASE, lease
        if deferred is None:
            flights.finish(call.key, future)
        else:  # the answer is out; the flight stays open until it is stored
            assert behind is not None
            behind.put(deferred, future)


class Done:
    """The end of a flow: what it returned, or what it raised."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _resume(flow: Flow[Any], result: Any = None, error: BaseException | None = None) -> Any:
    """The flow's next step after one step's ``result`` (or ``error``), or :class:`Done`.
    Never raises, so a runner tells a failed step from a failed flow."""
    try:
        return flow.send(result) if error is None else flow.throw(error)
    except StopIteration as stop:
        return Done(stop.value)
    except BaseException as exc:
        return Done(error=exc)


def run(flow: Flow[R], perform: Callable[[Op, Any], Any]) -> R:
    """Drive ``flow`` with blocking calls: ``perform(op, arg)`` does one step."""
    step = next(flow)
    while not isinstance(step, Done):
        try:
            step = _resume(flow, perform(*step))
        except BaseException as exc:  # the step failed: the flow decides what that means
            step = _resume(flow, error=exc)
    return step.result()


async def arun(flow: Flow[R], perform: Callable[[Op, Any], Awaitable[Any]]) -> R:
    """Drive ``flow`` with awaits: ``await perform(op, arg)`` does one step."""
    step = next(flow)
    while not isinstance(step, Done):
        try:
            step = _resume(flow, await perform(*step))
        except BaseException as exc:  # the step failed (or the task was cancelled in it)
            step = _resume(flow, error=exc)
    return step.result()
