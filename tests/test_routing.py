"""DeploymentPool: load balancing, retries, cooldowns, fallbacks, pass-through of client errors."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from thrifty.errors import (
    AllDeploymentsFailedError,
    ConfigError,
    UnknownModelError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from thrifty.retry import RetryPolicy
from thrifty.routing import STRATEGIES, Deployment, DeploymentPool, parse_fallbacks


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Upstreams:
    """Scripted deployments: each id answers from its own queue of outcomes (then "ok")."""

    def __init__(self, **scripts: list[BaseException | str]) -> None:
        self.scripts = {k: list(v) for k, v in scripts.items()}
        self.calls: list[str] = []

    async def __call__(self, deployment: Deployment) -> str:
        self.calls.append(deployment.id)
        script = self.scripts.get(deployment.id, [])
        outcome = script.pop(0) if script else f"answer from {deployment.id}"
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def make_pool(
    layout: dict[str, list[str]], clock: Clock | None = None, **options: object
) -> tuple[DeploymentPool, list[float]]:
    """A pool from {model_name: [deployment ids]}, a fake clock and recorded sleeps."""
    waits: list[float] = []
    clock = clock or Clock()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    options.setdefault("policy", RetryPolicy(num_retries=2, base_delay=1.0, jitter=False))
    deployments = [Deployment(name, id=i) for name, ids in layout.items() for i in ids]
    pool = DeploymentPool(deployments, clock=clock, sleep=sleep, **options)  # type: ignore[arg-type]
    return pool, waits


def err(status: int, **headers: str) -> UpstreamError:
    return UpstreamError(f"upstream said {status}", status=status, headers=headers)


async def test_answers_from_a_deployment_of_the_model() -> None:
    pool, waits = make_pool({"gpt": ["gpt-a"], "other": ["o"]})
    routed = await pool.run("gpt", Upstreams())
    assert routed.result == "answer from gpt-a"
    assert routed.deployment.id == "gpt-a" and not routed.fell_back
    assert [a.ok for a in routed.attempts] == [True] and waits == []


async def test_unknown_model_is_a_typed_error() -> None:
    pool, _ = make_pool({"gpt": ["a"]})
    with pytest.raises(UnknownModelError, match="gpt"):
        await pool.run("nope", Upstreams())


async def test_retries_a_5xx_then_answers() -> None:
    pool, waits = make_pool({"gpt": ["a"]})
    upstream = Upstreams(a=[err(502), err(503)])
    routed = await pool.run("gpt", upstream)
    assert routed.result == "answer from a"
    assert upstream.calls == ["a", "a", "a"]
    assert waits == [1.0, 2.0]
    assert [a.status for a in routed.attempts] == [502, 503, None]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_pass_through_without_retry_or_fallback(status: int) -> None:
    pool, waits = make_pool({"a": ["a1", "a2"], "b": ["b1"]}, fallbacks=[{"a": ["b"]}])
    upstream = Upstreams(a1=[err(status)], a2=[err(status)])
    with pytest.raises(UpstreamError) as raised:
        await pool.run("a", upstream)
    assert raised.value.status == status
    assert len(upstream.calls) == 1 and waits == []
    assert all(d["cooldown_seconds"] == 0 for d in pool.health())


async def test_retry_moves_to_a_sibling_deployment_first() -> None:
    pool, _waits = make_pool({"gpt": ["a", "b"]}, strategy="round-robin")
    upstream = Upstreams(a=[err(500)])
    routed = await pool.run("gpt", upstream)
    assert upstream.calls == ["a", "b"]
    assert routed.deployment.id == "b"


async def test_retry_after_is_honoured_when_no_sibling_can_answer() -> None:
    pool, waits = make_pool({"gpt": ["a"]})
    upstream = Upstreams(a=[err(429, **{"retry-after": "5"})])
    await pool.run("gpt", upstream)
    assert waits == [5.0]


async def test_a_sibling_need_not_wait_for_retry_after() -> None:
    pool, waits = make_pool({"gpt": ["a", "b"]}, strategy="round-robin")
    upstream = Upstreams(a=[err(429, **{"retry-after": "30"})])
    routed = await pool.run("gpt", upstream)
    assert routed.deployment.id == "b" and waits == [1.0]
    # and a's Retry-After cooled it: the next requests all go to b
    for _ in range(4):
        assert (await pool.run("gpt", upstream)).deployment.id == "b"


async def test_fallback_chain_is_walked_in_order() -> None:
    pool, _waits = make_pool(
        {"a": ["a1"], "b": ["b1"], "c": ["c1"]},
        fallbacks=[{"a": ["b", "c"]}],
        policy=RetryPolicy(num_retries=1, base_delay=1.0, jitter=False),
    )
    upstream = Upstreams(a1=[err(500), err(500)], b1=[TimeoutError(), TimeoutError()])
    routed = await pool.run("a", upstream)
    assert routed.result == "answer from c1" and routed.fell_back
    assert upstream.calls == ["a1", "a1", "b1", "b1", "c1"]
    assert [a.model_name for a in routed.attempts] == ["a", "a", "b", "b", "c"]


async def test_all_failed_raises_with_the_last_error_and_a_gateway_status() -> None:
    pool, _ = make_pool(
        {"a": ["a1"], "b": ["b1"]},
        fallbacks={"a": ["b"]},
        policy=RetryPolicy(num_retries=1, jitter=False),
    )
    last = err(500)
    upstream = Upstreams(a1=[err(503), err(503)], b1=[err(502), last])
    with pytest.raises(AllDeploymentsFailedError) as raised:
        await pool.run("a", upstream)
    failure = raised.value
    assert failure.last_error is last and failure.__cause__ is last
    assert failure.tried == ["a", "b"] and len(failure.attempts) == 4
    assert failure.status_code == 502
    assert "a -> b" in str(failure)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UpstreamTimeoutError("slow"), 504),
        (TimeoutError(), 504),
        (UpstreamError("busy", status=429), 503),
        (UpstreamError("down", status=503), 503),
        (UpstreamConnectionError("refused"), 502),
        (UpstreamError("bad gateway", status=500), 502),
    ],
)
async def test_gateway_status_follows_the_last_error(error: BaseException, status: int) -> None:
    pool, _ = make_pool({"a": ["a1"]}, policy=RetryPolicy(num_retries=0))
    with pytest.raises(AllDeploymentsFailedError) as raised:
        await pool.run("a", Upstreams(a1=[error]))
    assert raised.value.status_code == status


async def test_a_deployment_failing_more_than_allowed_is_cooled_down() -> None:
    clock = Clock()
    pool, _ = make_pool(
        {"gpt": ["bad", "good"]},
        clock,
        strategy="round-robin",
        allowed_fails=1,
        cooldown_time=30.0,
        policy=RetryPolicy(num_retries=1, base_delay=0.0, jitter=False),
    )
    upstream = Upstreams(bad=[err(500)] * 10)
    for _ in range(4):
        await pool.run("gpt", upstream)
    # bad failed twice (> allowed_fails=1) and is now skipped
    assert upstream.calls.count("bad") == 2
    health = {d["id"]: d for d in pool.health()}
    assert health["bad"]["cooldown_seconds"] == pytest.approx(30.0)
    upstream.calls.clear()
    for _ in range(5):
        await pool.run("gpt", upstream)
    assert upstream.calls == ["good"] * 5
    clock.now += 31  # the cooldown ends: bad gets traffic again
    for _ in range(4):
        await pool.run("gpt", upstream)
    assert "bad" in upstream.calls


async def test_failures_outside_the_window_are_forgotten() -> None:
    clock = Clock()
    pool, _ = make_pool(
        {"gpt": ["a", "b"]},
        clock,
        strategy="round-robin",
        allowed_fails=1,
        fail_window=60.0,
        policy=RetryPolicy(num_retries=1, base_delay=0.0, jitter=False),
    )
    upstream = Upstreams(a=[err(500), err(500)])
    await pool.run("gpt", upstream)
    clock.now += 120
    await pool.run("gpt", Upstreams())  # b answers (round robin)
    await pool.run("gpt", upstream)  # a fails again, but it is its first failure in the window
    assert all(d["cooldown_seconds"] == 0 for d in pool.health())


async def test_a_model_entirely_cooled_down_goes_straight_to_its_fallback() -> None:
    pool, waits = make_pool(
        {"a": ["a1"], "b": ["b1"]},
        fallbacks=[{"a": ["b"]}],
        allowed_fails=0,
        policy=RetryPolicy(num_retries=0),
    )
    upstream = Upstreams(a1=[err(500)])
    assert (await pool.run("a", upstream)).deployment.id == "b1"
    upstream.calls.clear()
    routed = await pool.run("a", upstream)
    assert upstream.calls == ["b1"] and routed.fell_back and waits == []


async def test_the_request_that_cools_a_model_falls_back_without_waiting_out_the_cooldown() -> None:
    """Issue 12, item 3: a1's second failure cools it for 30 s; the same request used to sleep
    those 30 s (a retry was left) before it tried the healthy fallback."""
    pool, waits = make_pool(
        {"a": ["a1"], "b": ["b1"]},
        fallbacks=[{"a": ["b"]}],
        allowed_fails=1,
        cooldown_time=30.0,
        policy=RetryPolicy(num_retries=2, base_delay=0.5, jitter=False),
    )
    upstream = Upstreams(a1=[err(500), err(500)])
    routed = await pool.run("a", upstream)
    assert routed.deployment.id == "b1" and upstream.calls == ["a1", "a1", "b1"]
    assert waits == [0.5]  # one backoff before a1's retry; no cooldown slept
    assert {d["id"]: d for d in pool.health()}["a1"]["cooldown_seconds"] == pytest.approx(30.0)


async def test_a_cooldown_is_waited_for_only_when_the_whole_chain_is_cooling() -> None:
    clock = Clock()
    pool, waits = make_pool(
        {"a": ["a1"], "b": ["b1", "b2"]},
        clock,
        fallbacks=[{"a": ["b"]}],
        allowed_fails=0,
        cooldown_time=5.0,
        strategy="round-robin",
        policy=RetryPolicy(num_retries=2, base_delay=0.0, jitter=False),
    )
    for deployment in pool.deployments("b"):
        deployment.cooldown_until = clock.now + 50.0  # the fallback is cooling too
    upstream = Upstreams(a1=[err(500)])
    routed = await pool.run("a", upstream)
    assert routed.deployment.id == "a1" and waits == [pytest.approx(5.0)]


async def test_a_failure_reported_after_the_attempt_cools_the_deployment() -> None:
    pool, _ = make_pool({"a": ["a1", "a2"]}, allowed_fails=1, cooldown_time=30.0)
    a1 = pool.deployments("a")[0]
    pool.record_failure(a1, ValueError("a client-side bug is not the upstream's fault"))
    pool.record_failure(a1, UpstreamConnectionError("reset mid-stream"))
    assert a1.cooldown_until == 0.0  # one counted failure: allowed
    pool.record_failure(a1, UpstreamTimeoutError("stalled mid-stream"))
    assert {d["id"]: d for d in pool.health()}["a1"]["cooldown_seconds"] == pytest.approx(30.0)


async def test_the_only_way_to_a_model_is_never_cooled() -> None:
    pool, _ = make_pool({"a": ["a1"]}, allowed_fails=0, policy=RetryPolicy(num_retries=0))
    for _ in range(3):
        with pytest.raises(AllDeploymentsFailedError):
            await pool.run("a", Upstreams(a1=[err(500)]))
    assert (await pool.run("a", Upstreams())).result == "answer from a1"


async def test_last_model_cooled_by_retry_after_is_waited_for() -> None:
    pool, waits = make_pool(
        {"a": ["a1", "a2"]}, policy=RetryPolicy(num_retries=2, base_delay=0.0, jitter=False)
    )
    upstream = Upstreams(
        a1=[err(429, **{"retry-after": "4"})], a2=[err(429, **{"retry-after": "6"})]
    )
    routed = await pool.run("a", upstream)
    assert routed.result.startswith("answer")
    # both cooled: the third attempt waits for the first cooldown to end (4 s after a1 failed)
    assert waits[-1] == pytest.approx(4.0)


async def test_no_deployment_available_is_a_503_with_retry_after() -> None:
    pool, _ = make_pool(
        {"a": ["a1", "a2"]},
        allowed_fails=0,
        cooldown_time=120.0,
        policy=RetryPolicy(num_retries=1, base_delay=0.0, jitter=False, max_retry_after=60),
    )
    upstream = Upstreams(a1=[err(500)], a2=[err(500)])
    with pytest.raises(AllDeploymentsFailedError):
        await pool.run("a", upstream)
    with pytest.raises(AllDeploymentsFailedError) as raised:
        await pool.run("a", upstream)
    assert raised.value.status_code == 503
    assert raised.value.retry_after == pytest.approx(120.0)
    assert raised.value.attempts == []


async def test_per_attempt_timeout_is_retried() -> None:
    calls = 0

    async def slow_then_fast(deployment: Deployment) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(5)
        return "fast"

    pool = DeploymentPool(
        [Deployment("a", id="a1")],
        timeout=0.05,
        policy=RetryPolicy(num_retries=1, base_delay=0.0),
    )
    routed = await pool.run("a", slow_then_fast)
    assert routed.result == "fast" and calls == 2
    assert routed.attempts[0].error is not None and "TimeoutError" in routed.attempts[0].error


async def test_in_flight_counts_drive_least_busy() -> None:
    pool, _ = make_pool({"gpt": ["a", "b", "c"]}, strategy="least-busy")
    gate = asyncio.Event()
    picked: list[str] = []

    async def held(deployment: Deployment) -> str:
        picked.append(deployment.id)
        await gate.wait()
        return deployment.id

    tasks = [asyncio.create_task(pool.run("gpt", held)) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert sorted(picked) == ["a", "b", "c"]  # each new request went to an idle deployment
    assert [d["in_flight"] for d in pool.health()] == [1, 1, 1]
    gate.set()
    await asyncio.gather(*tasks)
    assert [d["in_flight"] for d in pool.health()] == [0, 0, 0]


async def test_simple_shuffle_is_weighted() -> None:
    import random

    rng = random.Random(7)
    pool = DeploymentPool(
        [Deployment("gpt", id="big", weight=9), Deployment("gpt", id="small", weight=1)],
        rng=rng.random,
    )
    upstream = Upstreams()
    for _ in range(2000):
        await pool.run("gpt", upstream)
    share = Counter(upstream.calls)["big"] / 2000
    assert 0.86 < share < 0.94


def test_shuffle_weight_defaults_to_rpm_then_tpm() -> None:
    assert Deployment("m", rpm=900).share == 900
    assert Deployment("m", tpm=5000).share == 5000
    assert Deployment("m", weight=2, rpm=900).share == 2
    assert Deployment("m").share == 1


async def test_a_deployment_is_never_sent_more_than_its_rpm() -> None:
    clock = Clock()
    pool, waits = make_pool({"gpt": ["a", "b"]}, clock, strategy="round-robin")
    pool.deployments("gpt")[0].rpm = 2  # a: 2 a minute; b: unlimited
    upstream = Upstreams()
    for _ in range(10):
        await pool.run("gpt", upstream)
    assert Counter(upstream.calls) == {"a": 2, "b": 8} and waits == []
    clock.now += 30  # one request refilled
    upstream.calls.clear()
    for _ in range(4):
        await pool.run("gpt", upstream)
    assert Counter(upstream.calls)["a"] == 1


async def test_at_its_rate_the_last_model_waits_for_a_slot_without_using_retries() -> None:
    clock = Clock()
    pool, waits = make_pool({"gpt": ["a"]}, clock, policy=RetryPolicy(num_retries=0))
    pool.deployments("gpt")[0].rpm = 60  # one a second
    upstream = Upstreams()
    for _ in range(60):
        await pool.run("gpt", upstream)
    assert waits == []
    await pool.run("gpt", upstream)
    assert waits == [pytest.approx(1.0)]


async def test_at_its_rate_a_model_falls_back_at_once() -> None:
    pool, waits = make_pool({"a": ["a1"], "b": ["b1"]}, fallbacks=[{"a": ["b"]}])
    pool.deployments("a")[0].rpm = 1
    upstream = Upstreams()
    await pool.run("a", upstream)
    routed = await pool.run("a", upstream)
    assert routed.deployment.id == "b1" and routed.fell_back and waits == []


async def test_a_rate_wait_longer_than_max_retry_after_is_a_503() -> None:
    pool, waits = make_pool({"a": ["a1"]}, policy=RetryPolicy(max_retry_after=10))
    pool.deployments("a")[0].rpm = 1  # the next slot is 60 s away
    await pool.run("a", Upstreams())
    with pytest.raises(AllDeploymentsFailedError) as raised:
        await pool.run("a", Upstreams())
    assert raised.value.status_code == 503 and waits == []
    assert raised.value.retry_after == pytest.approx(60.0)


async def test_latency_based_routing_prefers_the_fastest() -> None:
    clock = Clock()
    pool, _ = make_pool({"gpt": ["slow", "fast"]}, clock, strategy="latency-based-routing")

    async def timed(deployment: Deployment) -> str:
        clock.now += 0.5 if deployment.id == "slow" else 0.05
        return deployment.id

    answers = [(await pool.run("gpt", timed)).result for _ in range(10)]
    assert sorted(answers[:2]) == ["fast", "slow"]  # each measured once
    assert answers[2:] == ["fast"] * 8


async def test_cancellation_releases_in_flight_and_is_not_retried() -> None:
    pool, _ = make_pool({"gpt": ["a"]})
    calls = 0

    async def hangs(deployment: Deployment) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)
        return "never"

    task = asyncio.create_task(pool.run("gpt", hangs))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1 and pool.health()[0]["in_flight"] == 0


async def test_deadline_stops_retry_waits() -> None:
    clock = Clock()
    pool, waits = make_pool({"gpt": ["a"]}, clock)
    with pytest.raises(AllDeploymentsFailedError):
        await pool.run("gpt", Upstreams(a=[err(503)] * 3), deadline=clock.now + 0.5)
    assert waits == []


def test_strategies_are_declared_as_data() -> None:
    assert set(STRATEGIES) == {
        "simple-shuffle",
        "least-busy",
        "round-robin",
        "latency-based-routing",
    }


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DeploymentPool([]), "model_list is empty"),
        (lambda: DeploymentPool([Deployment("a")], strategy="fastest"), "routing_strategy"),
        (lambda: DeploymentPool([Deployment("a")], fallbacks=[{"a": ["zz"]}]), "'zz'"),
        (lambda: DeploymentPool([Deployment("a", id="x"), Deployment("b", id="x")]), "twice"),
        (lambda: DeploymentPool([Deployment("a")], fallbacks="a"), "fallbacks"),
        (lambda: DeploymentPool([Deployment("a")], fallbacks=[{"a": [1]}]), "fallbacks.a"),
        (lambda: DeploymentPool([Deployment("a")], timeout=0), "timeout"),
    ],
)
def test_bad_configuration_is_a_config_error(
    build: Callable[[], DeploymentPool], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_parse_fallbacks_accepts_litellm_and_flat_shapes() -> None:
    assert parse_fallbacks([{"a": ["b", "c"]}, {"x": "y"}]) == {"a": ["b", "c"], "x": ["y"]}
    assert parse_fallbacks({"a": ["a", "b"]}) == {"a": ["b"]}
    assert parse_fallbacks(None) == {}


def test_deployment_ids_default_to_model_and_position() -> None:
    pool = DeploymentPool([Deployment("gpt"), Deployment("gpt"), Deployment("local")])
    assert [d.id for d in pool.deployments("gpt")] == ["gpt#0", "gpt#1"]
    assert pool.models() == ["gpt", "local"] and "gpt" in pool
    assert pool.chain("gpt") == ["gpt"]
