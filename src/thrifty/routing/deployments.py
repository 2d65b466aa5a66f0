"""Deployments behind model names: load balancing, retries, cooldowns and fallback chains.

A model name (``gpt-4o-mini``) can be served by several deployments (two API keys, an Azure and an
OpenAI endpoint, three vLLM replicas). :class:`DeploymentPool` picks one per attempt with a
strategy declared in :data:`STRATEGIES`, retries retryable failures (429, 5xx, connection errors,
timeouts) with :class:`~thrifty.retry.RetryPolicy`, cools down a deployment that keeps failing,
and walks the ``fallbacks`` chain (``{a: [b, c]}``: ``a``, then ``b``, then ``c``). Client errors
(400, 401, 404, 422 …) are not retried and do not fall back: they are raised unchanged.

The pool knows nothing of HTTP: a deployment carries an opaque ``target`` (a provider) and the
caller passes ``call(deployment)`` that makes one attempt. For a stream, ``call`` should return
once the upstream accepted the request (status and headers read), so that a failure before the
first byte is retried and one after it is not.

A deployment's ``rpm`` is also kept: one at its rate is skipped like a cooled one (its requests
refill continuously, ``rpm / 60`` a second), so the pool never sends a deployment more than it
accepts; when every deployment of the last model in the chain is at its rate, the request waits
for the first free slot (up to ``max_retry_after``, not counted as a retry).

Cooldowns, rates and in-flight counts live in this process (each gateway worker keeps its own).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from thrifty.errors import (
    AllDeploymentsFailedError,
    ConfigError,
    UnknownModelError,
    UpstreamTimeoutError,
)
from thrifty.limits.memory import TokenBucket
from thrifty.retry import RetryPolicy, is_retryable_error, retry_after_of, status_of
from thrifty.routing.affinity import rendezvous

T = TypeVar("T")

#: Weight of the newest latency sample in a deployment's moving average.
LATENCY_EWMA_ALPHA = 0.2
INF = float("inf")


@dataclass(slots=True, eq=False)
class Deployment:
    """One upstream that serves a model name, with its load-balancing state.

    Attributes:
        model_name: the public name clients ask for (``model_name`` in the config).
        target: what ``call`` needs to reach it (a provider); the pool never looks inside.
        id: a unique name for logs, metrics and ``X-Thrifty-Route`` (default ``model_name#n``).
        weight: share of traffic for ``simple-shuffle`` (default: ``rpm``, else ``tpm``, else 1).
        rpm: requests per minute the deployment accepts: the pool sends no more (and it weighs
            the shuffle).
        tpm: tokens per minute, as declared (it weighs the shuffle when there is no rpm).
        stream_timeout: seconds a stream from it may go without a chunk before the caller
            gives it up and reports it (:meth:`DeploymentPool.record_failure`); None: no limit.
    """

    model_name: str
    target: Any = None
    id: str = ""
    weight: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    stream_timeout: float | None = None
    in_flight: int = field(default=0, init=False)
    """Attempts running now (``least-busy`` picks the fewest)."""
    latency: float | None = field(default=None, init=False)
    """Moving average of successful attempts' seconds (``latency-based-routing``)."""
    cooldown_until: float = field(default=0.0, init=False)
    """Clock time before which the deployment is skipped."""
    failures: deque[float] = field(default_factory=deque, init=False)
    """Clock times of recent retryable failures."""
    requests: TokenBucket = field(default_factory=TokenBucket, init=False)
    """Requests left under ``rpm``."""

    def wait(self, now: float) -> float:
        """Seconds before this deployment may be sent a request (cooldown, then its rate)."""
        cooling = self.cooldown_until - now
        if self.rpm is None:
            return max(cooling, 0.0)
        rate = self.requests.wait(1, self.rpm, now)
        return max(cooling, INF if rate is None else rate, 0.0)

    @property
    def share(self) -> float:
        """The weight used by the weighted shuffle."""
        for value in (self.weight, self.rpm, self.tpm):
            if value is not None and value > 0:
                return float(value)
        return 1.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to one deployment, as the pool saw it."""

    deployment: str
    model_name: str
    seconds: float
    error: str | None = None
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Routed(Generic[T]):
    """What :meth:`DeploymentPool.run` returns: the answer and how it was obtained."""

    result: T
    deployment: Deployment
    attempts: tuple[Attempt, ...]
    requested: str

    @property
    def fell_back(self) -> bool:
        """True when a fallback model answered instead of the requested one."""
        return self.deployment.model_name != self.requested


Strategy = Callable[[Sequence[Deployment], int, Callable[[], float]], Deployment]


def _weighted_choice(candidates: Sequence[Deployment], rng: Callable[[], float]) -> Deployment:
    total = sum(d.share for d in candidates)
    point = rng() * total
    for deployment in candidates:
        point -= deployment.share
        if point < 0:
            return deployment
    return candidates[-1]


def _simple_shuffle(
    candidates: Sequence[Deployment], turn: int, rng: Callable[[], float]
) -> Deployment:
    return _weighted_choice(candidates, rng)


def _least_busy(
    candidates: Sequence[Deployment], turn: int, rng: Callable[[], float]
) -> Deployment:
    fewest = min(d.in_flight for d in candidates)
    return _weighted_choice([d for d in candidates if d.in_flight == fewest], rng)


def _round_robin(
    candidates: Sequence[Deployment], turn: int, rng: Callable[[], float]
) -> Deployment:
    return candidates[turn % len(candidates)]


def _lowest_latency(
    candidates: Sequence[Deployment], turn: int, rng: Callable[[], float]
) -> Deployment:
    unmeasured = [d for d in candidates if d.latency is None]
    if unmeasured:  # measure every deployment once before trusting the averages
        return _weighted_choice(unmeasured, rng)
    return min(candidates, key=lambda d: d.latency or 0.0)


#: Load-balancing strategies by the names LiteLLM's ``routing_strategy`` uses (plus round-robin).
STRATEGIES: dict[str, Strategy] = {
    "simple-shuffle": _simple_shuffle,
    "least-busy": _least_busy,
    "round-robin": _round_robin,
    "latency-based-routing": _lowest_latency,
}


def parse_fallbacks(value: Any) -> dict[str, list[str]]:
    """``fallbacks`` in LiteLLM's shape (``[{a: [b, c]}, …]``) or as one mapping, normalised."""
    if value is None:
        return {}
    items: list[Any] = [value] if isinstance(value, Mapping) else value
    if not isinstance(items, list):
        raise ConfigError("router_settings.fallbacks must be a list of {model: [fallbacks]}")
    chains: dict[str, list[str]] = {}
    for item in items:
        if not isinstance(item, Mapping):
            raise ConfigError("router_settings.fallbacks entries must be {model: [fallbacks]}")
        for model, targets in item.items():
            if isinstance(targets, str):
                targets = [targets]
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                raise ConfigError(f"router_settings.fallbacks.{model} must be a list of names")
            chains.setdefault(str(model), []).extend(t for t in targets if t != model)
    return chains


class _GroupExhausted(Exception):
    """Internal: a model's deployments are used up; the next model in the chain may answer."""

    def __init__(self, last_error: BaseException | None, retry_after: float | None = None):
        super().__init__(str(last_error))
        self.last_error = last_error
        self.retry_after = retry_after


def _gateway_status(error: BaseException | None) -> int:
    """502/503/504 for what finally failed (see AllDeploymentsFailedError.status_code), for
    users of the pool; the gateway answers by its own error table (``server/errors.py``)."""
    if error is None:
        return 503
    if isinstance(error, TimeoutError | UpstreamTimeoutError):
        return 504
    return 503 if status_of(error) in (429, 503) else 502


class DeploymentPool:
    """Deployments by model name, with retries, cooldowns and fallbacks.

    Args:
        deployments: every deployment; several may share a ``model_name``.
        fallbacks: ``[{a: [b, c]}]`` (LiteLLM's shape) or ``{a: [b, c]}``.
        policy: retries per model of the chain, and their waits.
        strategy: a key of :data:`STRATEGIES`.
        allowed_fails: retryable failures within ``fail_window`` seconds that a deployment may
            have; one more cools it down (LiteLLM's meaning: 0 cools on the first failure).
        fail_window: seconds over which failures are counted.
        cooldown_time: seconds a cooled deployment is skipped. A 429/503 with ``Retry-After``
            cools it for that long instead. A deployment that is the only way to serve its
            model (no sibling, no fallback) is never cooled: retries are all it gets.
        timeout: seconds per attempt (None: the call's own timeout only).
        clock, sleep, rng, is_retryable: injected for tests.

    Raises:
        ConfigError: no deployments, duplicate ids, an unknown strategy or fallback model.
    """

    def __init__(
        self,
        deployments: Iterable[Deployment],
        *,
        fallbacks: Any = None,
        policy: RetryPolicy | None = None,
        strategy: str = "simple-shuffle",
        allowed_fails: int = 3,
        fail_window: float = 60.0,
        cooldown_time: float = 30.0,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        is_retryable: Callable[[BaseException], bool] = is_retryable_error,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"router_settings.routing_strategy {strategy!r} is unknown; use one of: "
                + ", ".join(STRATEGIES)
            )
        if allowed_fails < 0 or cooldown_time < 0 or fail_window <= 0:
            raise ConfigError("allowed_fails must be ≥ 0, cooldown_time ≥ 0, fail_window > 0")
        if timeout is not None and timeout <= 0:
            raise ConfigError("router_settings.timeout must be positive seconds")
        self._groups: dict[str, list[Deployment]] = {}
        seen: set[str] = set()
        for deployment in deployments:
            group = self._groups.setdefault(deployment.model_name, [])
            if not deployment.id:
                deployment.id = f"{deployment.model_name}#{len(group)}"
            if deployment.id in seen:
                raise ConfigError(f"deployment id {deployment.id!r} is used twice")
            seen.add(deployment.id)
            group.append(deployment)
        if not self._groups:
            raise ConfigError("model_list is empty: at least one deployment is needed")
        self.fallbacks = parse_fallbacks(fallbacks)
        for model, targets in self.fallbacks.items():
            for name in [model, *targets]:
                if name not in self._groups:
                    raise ConfigError(
                        f"router_settings.fallbacks names {name!r}, "
                        "which no model_list entry serves"
                    )
        self.policy = policy or RetryPolicy()
        self.strategy = strategy
        self._pick_strategy = STRATEGIES[strategy]
        self.allowed_fails = allowed_fails
        self.fail_window = fail_window
        self.cooldown_time = cooldown_time
        self.timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._is_retryable = is_retryable
        self._turns: dict[str, int] = dict.fromkeys(self._groups, 0)

    # ------------------------------------------------------------ inspection
    def models(self) -> list[str]:
        """The model names served, in config order."""
        return list(self._groups)

    def __contains__(self, model_name: object) -> bool:
        return model_name in self._groups

    def deployments(self, model_name: str) -> list[Deployment]:
        """The deployments of one model name."""
        if model_name not in self._groups:
            raise UnknownModelError(model_name, self.models())
        return list(self._groups[model_name])

    def chain(self, model_name: str) -> list[str]:
        """The model names tried for a request: the model, then its fallbacks."""
        if model_name not in self._groups:
            raise UnknownModelError(model_name, self.models())
        return [model_name, *self.fallbacks.get(model_name, ())]

    def health(self) -> list[dict[str, Any]]:
        """Each deployment's state, for readiness checks and the admin API."""
        now = self._clock()
        return [
            {
                "id": d.id,
                "model_name": d.model_name,
                "in_flight": d.in_flight,
                "cooldown_seconds": round(max(d.cooldown_until - now, 0.0), 3),
                "recent_failures": sum(1 for t in d.failures if t > now - self.fail_window),
                "latency_seconds": d.latency,
            }
            for group in self._groups.values()
            for d in group
        ]

    # -------------------------------------------------------------- running
    async def run(
        self,
        model_name: str,
        call: Callable[[Deployment], Awaitable[T]],
        *,
        deadline: float | None = None,
        affinity: str | None = None,
        start: int = 0,
    ) -> Routed[T]:
        """Answer a request for ``model_name`` through its deployments and fallbacks.

        Args:
            model_name: the requested model name.
            call: makes one attempt on the deployment it is given.
            deadline: a ``clock()`` instant after which no retry wait starts.
            affinity: a prompt-prefix key (``affinity.prefix_key``): the first attempt goes to
                the healthy deployment the key belongs to (``affinity.rendezvous``), whatever the
                strategy, so the provider's prompt cache stays warm; retries pick as usual.
            start: skip the first ``start`` names of the model-and-fallbacks chain: they
                already declined (a student that deferred to its fallback).

        Returns:
            The result, the deployment that produced it, and every attempt made.

        Raises:
            UnknownModelError: no deployment serves ``model_name``.
            AllDeploymentsFailedError: retries and fallbacks used up (``status_code`` says
                502, 503 or 504); the last upstream error is its ``__cause__``.
            Any non-retryable error of ``call`` (a 4xx from the upstream), unchanged.
        """
        chain = self.chain(model_name)[start:]
        attempts: list[Attempt] = []
        last_error: BaseException | None = None
        retry_after: float | None = None
        for index, name in enumerate(chain):
            try:
                result, deployment = await self._run_model(
                    name,
                    call,
                    attempts,
                    chain=chain,
                    later=index + 1,
                    deadline=deadline,
                    affinity=affinity,
                )
            except _GroupExhausted as exhausted:
                last_error = exhausted.last_error or last_error
                retry_after = exhausted.retry_after
                continue
            return Routed(result, deployment, tuple(attempts), model_name)
        raise AllDeploymentsFailedError(
            model_name,
            chain,
            list(attempts),
            last_error,
            _gateway_status(last_error if attempts else None),
            retry_after,
        ) from last_error

    async def _run_model(
        self,
        name: str,
        call: Callable[[Deployment], Awaitable[T]],
        attempts: list[Attempt],
        *,
        chain: Sequence[str],
        later: int,
        deadline: float | None,
        affinity: str | None = None,
    ) -> tuple[T, Deployment]:
        """Retries on one model's deployments; raises _GroupExhausted to move down the chain.

        ``chain[later:]`` are the models after this one (no list is made of them unless an
        attempt failed). A wait for a cooldown or a ``Retry-After`` is never made while one of
        them can answer now: the request moves on to it instead (a cooldown lasts tens of
        seconds, a healthy fallback answers in one).
        """
        last_in_chain = later >= len(chain)
        failed: set[str] = set()
        last_error: BaseException | None = None
        retry = 0
        throttled_for = 0.0  # waits for a free rate slot: queueing, not retries
        while True:
            deployment = self._pick(name, avoid=failed, affinity=affinity)
            if deployment is None:
                wait, throttled = self._next_free(name)
                allowed = (
                    throttled_for + wait <= self.policy.max_retry_after
                    if throttled
                    else retry < self.policy.num_retries
                )
                if (
                    not last_in_chain
                    or not allowed
                    or wait > self.policy.max_retry_after
                    or self._past(deadline, wait)
                ):
                    raise _GroupExhausted(last_error, retry_after=wait if wait < INF else None)
                await self._sleep(wait)
                if throttled:
                    throttled_for += wait
                else:
                    retry += 1
                continue
            started = self._clock()
            deployment.in_flight += 1
            try:
                if self.timeout is None:
                    result = await call(deployment)
                else:
                    result = await asyncio.wait_for(call(deployment), self.timeout)
            except Exception as exc:
                seconds = self._clock() - started
                error = f"{type(exc).__name__}: {exc}"
                attempts.append(Attempt(deployment.id, name, seconds, error, status_of(exc)))
                if not self._is_retryable(exc):
                    raise
                last_error = exc
                failed.add(deployment.id)
                self._record_failure(deployment, exc)
            else:
                seconds = self._clock() - started
                attempts.append(Attempt(deployment.id, name, seconds))
                self._record_success(deployment, seconds)
                return result, deployment
            finally:
                deployment.in_flight -= 1
            least_wait = self._least_wait(name, failed, deployment, retry_after_of(last_error))
            if (
                retry >= self.policy.num_retries
                or (least_wait is not None and least_wait > self.policy.max_retry_after)
                or (least_wait and self._any_free(chain[later:]))
            ):
                raise _GroupExhausted(last_error, retry_after=least_wait)
            delay = self.policy.delay(retry, least_wait, self._rng)
            if self._past(deadline, delay):
                raise _GroupExhausted(last_error)
            await self._sleep(delay)
            retry += 1

    # ------------------------------------------------------------ bookkeeping
    def _pick(
        self, name: str, *, avoid: set[str], peek: bool = False, affinity: str | None = None
    ) -> Deployment | None:
        """A healthy deployment of ``name`` (those not yet failed in this request first); the
        one ``affinity`` belongs to while none has failed yet."""
        now = self._clock()
        healthy = [d for d in self._groups[name] if d.wait(now) <= 0.0]
        fresh = [d for d in healthy if d.id not in avoid] or healthy
        if not fresh:
            return None
        if peek:
            return fresh[0] if any(d.id not in avoid for d in fresh) else None
        turn = self._turns[name]
        self._turns[name] = turn + 1
        if affinity is not None and not avoid:
            chosen = rendezvous(fresh, affinity)
        else:
            chosen = self._pick_strategy(fresh, turn, self._rng)
        if chosen.rpm is not None:
            chosen.requests.take(1, chosen.rpm, now)
        return chosen

    def _least_wait(
        self, name: str, failed: set[str], last: Deployment, retry_after: float | None
    ) -> float | None:
        """The least wait before the next attempt can succeed, beyond the backoff.

        None when another healthy deployment can take it at once; else this deployment's
        ``Retry-After`` when it was not cooled (it will be retried), else the time until the
        first cooled deployment comes back.
        """
        if self._pick(name, avoid=failed, peek=True) is not None:
            return None
        if last.wait(self._clock()) <= 0.0:
            return retry_after
        return self._next_free(name)[0]

    def _next_free(self, name: str) -> tuple[float, bool]:
        """Seconds until a deployment of ``name`` is free, and whether only its rate holds it
        back (not a cooldown)."""
        now = self._clock()
        first = min(self._groups[name], key=lambda d: d.wait(now))
        return first.wait(now), first.cooldown_until <= now

    def _any_free(self, names: Sequence[str]) -> bool:
        """Whether a deployment of one of ``names`` can be sent a request now."""
        now = self._clock()
        return any(d.wait(now) <= 0.0 for name in names for d in self._groups[name])

    def _past(self, deadline: float | None, wait: float) -> bool:
        return deadline is not None and self._clock() + wait > deadline

    def _can_cool(self, deployment: Deployment) -> bool:
        """Cooling is only worth it when something else can answer meanwhile."""
        name = deployment.model_name
        return len(self._groups[name]) > 1 or bool(self.fallbacks.get(name))

    def record_failure(self, deployment: Deployment, exc: BaseException) -> None:
        """Count a failure seen after the attempt returned, as a failed attempt counts.

        A stream's attempt ends at its first chunk; a stream that breaks or stalls later must
        still cool its deployment, or every stream to it keeps failing while the fallback idles.
        Errors that are not the upstream's fault (not retryable) are not counted.
        """
        if self._is_retryable(exc):
            self._record_failure(deployment, exc)

    def _record_failure(self, deployment: Deployment, exc: BaseException) -> None:
        now = self._clock()
        failures = deployment.failures
        failures.append(now)
        while failures and failures[0] <= now - self.fail_window:
            failures.popleft()
        if not self._can_cool(deployment):
            return
        until = 0.0
        retry_after = retry_after_of(exc)
        if retry_after is not None and status_of(exc) in (429, 503):
            until = now + retry_after
        if len(failures) > self.allowed_fails:
            until = max(until, now + self.cooldown_time)
            failures.clear()
        deployment.cooldown_until = max(deployment.cooldown_until, until)

    def _record_success(self, deployment: Deployment, seconds: float) -> None:
        previous = deployment.latency
        deployment.latency = (
            seconds if previous is None else previous + LATENCY_EWMA_ALPHA * (seconds - previous)
        )
