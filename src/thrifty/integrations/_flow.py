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


def run_sync(flow: Flow[T]) -> T:
    """Run ``flow``, making each step with its plain callable."""
    result: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        result, error = None, None
        try:
            if step.compute is None:
                result = step.sync(*step.args, **step.kwargs)
            else:
                factory = step.compute
                result = step.sync(*step.args, lambda: run_sync(factory()), **step.kwargs)
        except Exception as exc:
            error = exc


async def run_async(flow: Flow[T]) -> T:
    """Run ``flow``, awaiting each step's async callable."""
    result: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        result, error = None, None
        try:
            if step.compute is None:
                result = await step.asynchronous(*step.args, **step.kwargs)
            else:
                result = await step.asynchronous(*step.args, _async_compute(step.compute),
                                                 **step.kwargs)  # fmt: skip
        except Exception as exc:
            error = exc


def _async_compute(factory: Callable[[], Flow[T]]) -> Callable[[], Awaitable[T]]:
    async def compute() -> T:
        return await run_async(factory())

    return compute
