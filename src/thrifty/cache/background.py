"""The work a cache does after the answer went out: write-behind stores and counter flushes.

A gateway's miss is answered before its answer is stored (``Cache(write_behind=True)``). Handing
each such write to asyncio's thread pool cost the event loop a task, an executor hop and, when
the write finished, a wake-up of the loop to complete the task: about a tenth of the loop's time
on a miss. Here the loop only puts the job on a queue; one thread per cache runs the jobs in
order, and nothing comes back to the loop unless someone waits (:meth:`BackgroundJobs.drain`).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import threading
import weakref
from collections.abc import Callable

log = logging.getLogger("thrifty.cache")

Job = Callable[[], object]
#: Seconds without work after which the thread ends (the next job starts a new one).
IDLE_EXIT_SECONDS = 30.0


def _close_at_exit(ref: weakref.ref[BackgroundJobs]) -> None:
    """Finish a cache's pending writes before the interpreter exits (unless it is gone)."""
    jobs = ref()
    if jobs is not None:
        jobs.close()


class BackgroundJobs:
    """Runs jobs in order on one daemon thread (started on first use, and again after a fork).

    Args:
        on_error: called with the exception of a job that raised (the job is then done).
        name: the thread's name.
    """

    def __init__(self, on_error: Callable[[BaseException], None], name: str = "thrifty-writer"):
        self._on_error = on_error
        self._name = name
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._pending = 0
        self._at_exit = False

    def __len__(self) -> int:
        """Jobs submitted and not finished."""
        return self._pending

    def submit(self, job: Job) -> None:
        """Run ``job`` on the background thread, after the jobs submitted before it."""
        with self._lock:  # the queue is fed under the lock an idle thread exits under
            self._pending += 1
            self._queue.put(job)
            thread = self._thread
            if thread is None or not thread.is_alive():
                thread = self._thread = threading.Thread(
                    target=self._run, name=self._name, daemon=True
                )
                thread.start()
                if not self._at_exit:  # finish the writes before the interpreter exits
                    self._at_exit = True
                    atexit.register(_close_at_exit, weakref.ref(self))

    def _run(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=IDLE_EXIT_SECONDS)
            except queue.Empty:  # idle: end the thread (it holds its cache alive meanwhile)
                with self._lock:
                    if self._queue.empty():
                        if self._thread is threading.current_thread():
                            self._thread = None
                        return
                continue
            if job is None:
                return
            try:
                job()
            except BaseException as exc:  # a job's failure must not end the thread
                try:
                    self._on_error(exc)
                except Exception:
                    log.exception("reporting a background job's failure failed")
            finally:
                with self._lock:
                    self._pending -= 1
                    if not self._pending:
                        self._done.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every submitted job finished; False if ``timeout`` ran out first."""
        with self._lock:
            return self._done.wait_for(lambda: not self._pending, timeout)

    async def drain(self) -> None:
        """Wait, without blocking the event loop, until every submitted job finished."""
        if self._pending:
            await asyncio.to_thread(self.wait)

    def close(self, timeout: float | None = 30.0) -> None:
        """Finish the submitted jobs and stop the thread (a later job starts a new one)."""
        if not self.wait(timeout):
            log.warning("thrifty: %d background cache writes unfinished at close", self._pending)
        with self._lock:
            thread = self._thread
            if thread is None or not thread.is_alive():
                return
            self._thread = None
            self._queue.put(None)
        thread.join(timeout)
