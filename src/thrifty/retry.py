"""Retries with exponential backoff, full jitter and ``Retry-After``, for any async call.

The gateway retries upstream calls with it and the batch engine retries its requests with it, so
it knows nothing about HTTP clients: an error is retryable when it carries a retryable status
(``status`` or ``status_code`` attribute: 408, 409, 429, 5xx), or is a connection error or a
timeout. Upstream errors can carry ``headers`` (a mapping); ``Retry-After`` and
``retry-after-ms`` found there set the least wait before the next attempt.

Example::

    policy = RetryPolicy(num_retries=3, base_delay=0.5, max_delay=8.0)
    answer = await call_with_retries(lambda: provider.chat(body), policy)
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from thrifty.errors import ConfigError

T = TypeVar("T")

#: Statuses worth another attempt (the same set as OpenAI's SDKs): request timeout, conflict,
#: rate limited and every server error.
RETRYABLE_STATUSES = frozenset({408, 409, 429})

#: Exception types that mean "the call did not get an answer", found in whichever HTTP client is
#: loaded. Looked up in ``sys.modules`` so this module never imports a client itself.
_CLIENT_TRANSPORT_ERRORS: tuple[tuple[str, str], ...] = (
    ("aiohttp", "ClientConnectionError"),
    ("aiohttp", "ServerTimeoutError"),
    ("httpx", "TransportError"),
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry.

    Attributes:
        num_retries: attempts after the first one (0: no retries).
        base_delay: seconds of the first backoff ceiling; it doubles with every attempt.
        max_delay: the backoff ceiling never exceeds this many seconds.
        jitter: full jitter (a uniform wait in ``[0, ceiling]``) so that many clients failing
            together do not retry together; off, the wait is the ceiling itself.
        max_retry_after: a ``Retry-After`` longer than this many seconds is not waited for: the
            error is raised so that a fallback can answer instead.
    """

    num_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: bool = True
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.num_retries < 0:
            raise ConfigError("num_retries must be 0 or more")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ConfigError("retry delays must be non-negative seconds")

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0 for the first failure)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** min(attempt, 62)))
        return ceiling * rng() if self.jitter else ceiling

    def delay(
        self, attempt: int, retry_after: float | None, rng: Callable[[], float] = random.random
    ) -> float:
        """The wait before the next attempt: the backoff, but never less than ``Retry-After``."""
        backoff = self.backoff(attempt, rng)
        return backoff if retry_after is None else max(backoff, retry_after)


def is_retryable_status(status: int) -> bool:
    """True for 408, 409, 429 and every 5xx."""
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an error carries (``status`` or ``status_code``), if any."""
    for name in ("status", "status_code"):
        value = getattr(exc, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    for module_name, type_name in _CLIENT_TRANSPORT_ERRORS:
        module = sys.modules.get(module_name)
        error_type = getattr(module, type_name, None) if module is not None else None
        if isinstance(error_type, type) and isinstance(exc, error_type):
            return True
    return False


def is_retryable_error(exc: BaseException) -> bool:
    """Whether another attempt may succeed.

    An explicit boolean ``retryable`` attribute on the error decides first; then its status;
    then whether it is a timeout or a connection error (of the standard library, aiohttp or
    httpx). A cause chained with ``raise … from`` is looked at when the error itself says nothing.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        flag = getattr(current, "retryable", None)
        if isinstance(flag, bool):
            return flag
        status = status_of(current)
        if status is not None:
            return is_retryable_status(status)
        if _is_transport_error(current):
            return True
        current = current.__cause__
    return False


def _header(headers: Any, name: str) -> str | None:
    """A header's value from any mapping, whatever the case of its name."""
    if not headers:
        return None
    getter = getattr(headers, "get", None)
    if getter is not None:
        for candidate in (name, name.title(), name.upper()):
            value = getter(candidate)
            if value is not None:
                return str(value)
    items = headers.items() if isinstance(headers, Mapping) else headers
    try:
        for key, value in items:
            if str(key).lower() == name:
                return str(value)
    except (TypeError, ValueError):
        return None
    return None


def retry_after_seconds(headers: Any, *, now: float | None = None) -> float | None:
    """Seconds a server asked us to wait, from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be seconds (``"2"``, ``"1.5"``) or an HTTP-date; a date in the past
    means 0. Unparseable or negative values are ignored (None), as is a missing header.

    Args:
        headers: any mapping or list of (name, value) pairs; names are matched case-insensitively.
        now: the current Unix time, for HTTP-dates (tests pass it; default ``time.time()``).
    """
    raw_ms = _header(headers, "retry-after-ms")
    if raw_ms is not None:
        try:
            millis = float(raw_ms)
        except ValueError:
            millis = -1.0
        if millis >= 0 and millis == millis:  # NaN is not a wait
            return millis / 1000.0
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT
            return None
        return max(when.timestamp() - (time.time() if now is None else now), 0.0)
    return seconds if seconds >= 0 and seconds == seconds else None


def retry_after_of(exc: BaseException) -> float | None:
    """The ``Retry-After`` an error's ``headers`` attribute carries, if any."""
    return retry_after_seconds(getattr(exc, "headers", None))


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    is_retryable: Callable[[BaseException], bool] = is_retryable_error,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    on_retry: Callable[[int, BaseException, float], Any] | None = None,
    deadline: float | None = None,
    rng: Callable[[], float] = random.random,
) -> T:
    """Await ``fn()`` until it succeeds, retrying retryable errors as ``policy`` says.

    Before retry ``n`` (0-based) it waits ``max(policy.backoff(n), Retry-After)``.

    Args:
        fn: makes one attempt; called again for every retry.
        policy: how many retries and how long to wait.
        is_retryable: decides from the error whether to try again.
        sleep: the wait (tests pass a fake).
        on_retry: called as ``on_retry(attempt, error, delay)`` before each wait (for logs,
            metrics, spans).
        deadline: a ``time.monotonic()`` instant; a wait that would end after it is not made
            and the error is raised instead.
        rng: random numbers in [0, 1) for the jitter.

    Returns:
        What ``fn`` returned.

    Raises:
        The last error when it is not retryable, retries are used up, its ``Retry-After`` exceeds
        ``policy.max_retry_after``, or the deadline would pass. Cancellation is never retried.
    """
    attempt = 0
    while True:
        try:
            return await fn()
        except Exception as exc:
            if attempt >= policy.num_retries or not is_retryable(exc):
                raise
            retry_after = retry_after_of(exc)
            if retry_after is not None and retry_after > policy.max_retry_after:
                raise
            delay = policy.delay(attempt, retry_after, rng)
            if deadline is not None and time.monotonic() + delay > deadline:
                raise
            if on_retry is not None:
                on_retry(attempt, exc, delay)
        await sleep(delay)
        attempt += 1
