"""Work that runs after the response (accounting a stream, a refresh's cache write).

Kept referenced until done, so the event loop cannot drop a task half-way, and awaited at
shutdown, so no answer is lost when the gateway stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class BackgroundTasks:
    """The tasks spawned by requests and not finished yet."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` after the response."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every task still running (their errors are their own to log)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
