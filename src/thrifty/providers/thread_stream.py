"""Drive a blocking token iterator in a worker thread and hand its items to the event loop.

The local runtimes produce streamed chunks from a blocking iterator that must run under the
model's lock; the event loop must stay free meanwhile, and a client that goes away must release
the lock promptly (the worker stops after its current token). Both runtimes share this one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

_SENTINEL = object()


async def iterate_in_thread(
    open_chunks: Callable[[], Iterator[Any]],
    lock: threading.Lock,
    translate: Callable[[Exception], BaseException | None],
) -> AsyncGenerator[Any, None]:
    """Yield what ``open_chunks()`` yields, computed in a worker thread holding ``lock``.

    Args:
        open_chunks: called in the worker with ``lock`` held; returns the blocking iterator.
        lock: serialises the model (held from opening to the last chunk).
        translate: maps a runtime exception to the one to raise (``None``: raise it as is).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def produce() -> None:
        try:
            with lock:
                chunks = open_chunks()
                try:
                    for chunk in chunks:
                        put(chunk)
                        if stop.is_set():
                            break
                finally:
                    close = getattr(chunks, "close", None)
                    if close is not None:
                        with contextlib.suppress(Exception):
                            close()
        except Exception as exc:
            put(translate(exc) or exc)
        except BaseException as exc:
            put(exc)
        finally:
            put(_SENTINEL)

    producer = loop.run_in_executor(None, produce)
    try:
        while (item := await queue.get()) is not _SENTINEL:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # the worker finishes its current token and releases the lock
    await producer
