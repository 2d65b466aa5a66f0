"""Logic written once, run from a sync and an async face (the way httpx writes its auth flows).

A *flow* is a generator that yields the :class:`Step` it needs done (call the upstream, look in
the cache, store an answer) and receives its result; it never does I/O itself. :func:`run_sync`
makes each step with the plain callable, :func:`run_async` awaits the async one, so the cache
logic of ``thrifty.wrap`` and ``@thrifty.cached`` exists once and cannot drift between its sync
and async faces (it had: two copies of each proxy and decorator). See httpx ``_auth.py``:
``auth_flow`` driven by ``sync_auth_flow`` and ``async_auth_flow``.

A step's exception is thrown back into the flow at its ``yield``, so a flow handles failures
with plain ``try``/``except`` around the ``yield``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")

#: A generator that yields steps, is sent their results and returns a ``T``.
Flow = Generator["Step", Any, T]

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


class Step(NamedTuple):
    """One call a flow asks for: ``sync(*args, **kwargs)``, or ``await asynchronous(...)``.

    ``compute``, when given, is a flow factory passed as the last positional argument, as a
    plain function to ``sync`` and as a coroutine function to ``asynchronous`` (the
    ``compute`` of ``Cache.get_or_compute`` / ``aget_or_compute``).
    """

    sync: Callable[..., Any]
    asynchronous: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = _NO_KWARGS
    compute: Callable[[], Flow[Any]] | None = None


def call(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Step:
    """A step calling ``fn`` (a plain function on the sync face, a coroutine function on the
    async one: an SDK's ``create``, a decorated model function)."""
    return Step(fn, fn, args, kwargs)


def _resume(flow: Flow[Any], result: Any, error: Exception | None) -> Step:
    """Send the last step's result (or throw its exception) into ``flow``: its next step.

    Raises:
        StopIteration: the flow returned (``.value`` is what it returned).
    """
    return flow.send(result) if error is None else flow.throw(error)


def run_sync(flow: Flow[T]) -> T:
    """Run ``flow``, making each step with its plain callable."""
    try:
        step = flow.send(None)
        while True:
            try:
                result = step.sync(*_sync_args(step), **step.kwargs)
            except Exception as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(result)
    except StopIteration as stop:
        return stop.value


async def run_async(flow: Flow[T]) -> T:
    """Run ``flow``, awaiting each step's async callable."""
    try:
        step = flow.send(None)
        while True:
            outcome = await _awaited(step)
            step = _resume(flow, *outcome)
    except StopIteration as stop:  # (a step's own StopIteration reaches the flow as an error)
        return stop.value


async def _awaited(step: Step) -> tuple[Any, Exception | None]:
    try:
        return await step.asynchronous(*_async_args(step), **step.kwargs), None
    except Exception as exc:
        return None, exc


def _sync_args(step: Step) -> tuple[Any, ...]:
    if step.compute is None:
        return step.args
    factory = step.compute
    return (*step.args, lambda: run_sync(factory()))


def _async_args(step: Step) -> tuple[Any, ...]:
    """The step's arguments, its ``compute`` flow as a coroutine function."""
    if step.compute is None:
        return step.args
    factory = step.compute

    async def compute() -> Any:
        return await run_async(factory())

    return (*step.args, compute)
