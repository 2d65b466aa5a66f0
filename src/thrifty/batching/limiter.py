"""Client-side rate limits for a batch: requests per minute and tokens per minute.

Providers enforce limits per second ("at most RPM/60 requests in any second"), so a bucket that
holds a whole minute would send a minute's burst and be refused. Requests are therefore spaced
evenly (a bucket of one second's worth or less), and a 429's ``Retry-After`` pauses every sender,
not just the one that was refused: the limit is shared, so the others would be refused too.

Tokens: a request's prompt tokens are taken before it is sent (counted with tiktoken), its output
tokens are settled when the answer comes (from ``usage``), so the bucket may go into debt and
later requests wait for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from thrifty.errors import ConfigError


class TokenBucket:
    """An async token bucket that may go into debt.

    Args:
        rate: tokens added per second.
        capacity: the most tokens it holds (the largest burst). A request bigger than the capacity
            waits for a full bucket and then takes it into debt, so it is never refused forever.
        initial: tokens at the start (default: full).
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        initial: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ConfigError("a rate limit must be positive")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._level = capacity if initial is None else min(initial, capacity)
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()  # waiters are served first come, first served

    def _refill(self) -> float:
        now = self._clock()
        if now > self._stamp:  # the stamp lies ahead while paused: nothing refills until then
            self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
            self._stamp = now
        return now

    @property
    def level(self) -> float:
        self._refill()
        return self._level

    def wait_time(self, amount: float) -> float:
        """Seconds until ``amount`` tokens could be taken (0: now)."""
        now = self._refill()
        need = min(amount, self.capacity)
        wait = 0.0 if self._level >= need else (need - self._level) / self.rate
        return max(wait, self._paused_until - now)

    async def acquire(self, amount: float = 1.0) -> float:
        """Take ``amount`` tokens, waiting as long as needed; returns the seconds waited."""
        started = self._clock()
        async with self._lock:
            while (wait := self.wait_time(amount)) > 0:
                await asyncio.sleep(wait)
            self._level -= amount
        return self._clock() - started

    def settle(self, amount: float) -> None:
        """Take (positive) or give back (negative) tokens after the fact, without waiting."""
        self._refill()
        self._level = min(self.capacity, self._level - amount)

    def pause(self, seconds: float) -> None:
        """Let nothing through for ``seconds`` (a 429's ``Retry-After``).

        When the pause ends one request may go at once and the rest follow evenly spaced, not in
        a burst; the provider's new window opens when its ``Retry-After`` ends, so sending from
        its start keeps later requests inside their windows."""
        now = self._refill()
        self._paused_until = max(self._paused_until, now + seconds)
        self._level = min(self._level, 1.0)
        self._stamp = max(self._stamp, self._paused_until)


class BatchLimiter:
    """The RPM and TPM limits of one batch run (either may be off).

    Args:
        rpm: requests per minute (None: unlimited).
        tpm: tokens per minute, prompt plus output (None: unlimited).
        burst_seconds: how many seconds' worth of requests may go at once; one request or a
            second's worth, whichever is smaller, by default (see the module docstring).
    """

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        burst_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ConfigError(f"--{name} must be a positive number")
        self._clock = clock
        self._paused_until = 0.0
        self.requests: TokenBucket | None = None
        self.tokens: TokenBucket | None = None
        if rpm:
            per_second = rpm / 60.0
            burst = max(1.0, per_second * burst_seconds) if burst_seconds else 1.0
            # Slack of one request or 5 % of a second's worth: a sender woken late by the event
            # loop, or a slot freed a moment early, may catch up, so timer lateness does not add
            # up over a long job (without it: 8 % of a 30 s run). A provider's per-second window
            # can absorb that little; if not, its 429 re-aligns the senders.
            slack = max(1.0, 0.05 * per_second)
            self.requests = TokenBucket(per_second, burst + slack, initial=burst, clock=clock)
        if tpm:
            per_second = tpm / 60.0
            self.tokens = TokenBucket(per_second, per_second * (burst_seconds or 1.0), clock=clock)

    async def acquire(self, prompt_tokens: int) -> float:
        """Wait for a request slot and its prompt tokens; returns the seconds waited."""
        waited = 0.0
        # a pause holds senders even with no limit configured (429-driven only)
        while (pause := self._paused_until - self._clock()) > 0:
            await asyncio.sleep(pause)
            waited += pause
        if self.tokens is not None:
            waited += await self.tokens.acquire(prompt_tokens)
        if self.requests is not None:
            waited += await self.requests.acquire(1.0)
        return waited

    def settle(self, estimated_prompt: int, prompt: int, completion: int) -> None:
        """Correct the token bucket once the answer's usage is known."""
        if self.tokens is not None:
            self.tokens.settle(prompt - estimated_prompt + completion)

    def pause(self, seconds: float) -> None:
        """A 429 said to wait: hold every sender back."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.pause(seconds)
