"""The background thread that stores write-behind answers and flushes counters."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from thrifty.cache.background import BackgroundJobs


def test_jobs_run_in_order_off_the_calling_thread() -> None:
    errors: list[BaseException] = []
    jobs = BackgroundJobs(errors.append)
    seen: list[tuple[int, str]] = []
    for i in range(100):
        jobs.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
    assert jobs.wait(5)
    assert [i for i, _ in seen] == list(range(100))
    assert {name for _, name in seen} == {"thrifty-writer"}
    assert len(jobs) == 0 and errors == []
    jobs.close()


def test_a_failing_job_is_reported_and_the_next_one_still_runs() -> None:
    errors: list[BaseException] = []
    jobs = BackgroundJobs(errors.append)
    ran = threading.Event()

    def fail() -> None:
        raise RuntimeError("disk full")

    jobs.submit(fail)
    jobs.submit(ran.set)
    assert jobs.wait(5)
    assert ran.is_set()
    assert [str(e) for e in errors] == ["disk full"]
    jobs.close()


def test_drain_waits_without_blocking_the_loop() -> None:
    jobs = BackgroundJobs(lambda exc: None)
    done: list[int] = []

    async def main() -> int:
        jobs.submit(lambda: (time.sleep(0.2), done.append(1)))
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        await jobs.drain()
        await ticker
        return ticks

    assert asyncio.run(main()) >= 5  # the loop kept running while the job slept
    assert done == [1]


def test_close_finishes_the_jobs_and_a_later_submit_starts_a_new_thread() -> None:
    jobs = BackgroundJobs(lambda exc: None)
    done: list[int] = []
    jobs.submit(lambda: (time.sleep(0.05), done.append(1)))
    jobs.close()
    assert done == [1]
    jobs.submit(lambda: done.append(2))
    assert jobs.wait(5)
    assert done == [1, 2]
    jobs.close()


def test_an_idle_thread_ends_and_the_next_job_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("thrifty.cache.background.IDLE_EXIT_SECONDS", 0.05)
    jobs = BackgroundJobs(lambda exc: None)
    done: list[int] = []
    jobs.submit(lambda: done.append(1))
    assert jobs.wait(5)
    first = jobs._thread
    assert first is not None
    first.join(5)  # idle: it ends by itself (and stops holding its cache alive)
    assert not first.is_alive() and jobs._thread is None
    for i in range(2, 20):  # pauses around the idle limit: submissions race with idle exits
        jobs.submit(lambda i=i: done.append(i))
        time.sleep(0.04 + 0.005 * (i % 4))
    assert jobs.wait(5)
    assert done == list(range(1, 20))
    jobs.close()
