"""Many replicas, one cache: three ``thrifty serve`` processes behind a round-robin proxy
(:class:`thrifty.testing.round_robin.RoundRobinProxy`, a FAKE load balancer), sharing the
machine's Redis for the cache (a prefix of this run's own), leases and key limits, in front of
one FAKE upstream that counts its calls.

What a user scaling out relies on: the same hit rate as one process, one upstream call for
identical concurrent requests wherever they land, a key's rpm and budget held across replicas,
and a replica killed mid-load costing its clients nothing (the proxy sends a refused or dropped
request to the next replica, as a load balancer does).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from conftest import REDIS_URL
from thrifty.limits import open_limits
from thrifty.server.auth import key_id
from thrifty.testing.fake_openai import FakeOpenAI
from thrifty.testing.round_robin import RoundRobinProxy

pytestmark = [pytest.mark.slow, pytest.mark.redis]

RUN = uuid.uuid4().hex[:12]
PREFIX = f"thrifty-replicas-{RUN}:"
KEYS = {name: f"sk-{name}-{RUN}" for name in ("solo", "multi", "burst", "rpm", "budget", "kill")}
RPM = 5
BUDGET = 0.003
#: A request retried after its replica died waits for the lease the dead replica held on it
#: (60 s by default): short here, above the fake's slowest answer (1 s).
LEASE_TTL = 5.0
PRICE = "0.00001"  # dollars per token, in and out (YAML reads 1e-5 as a string)


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: held together while chosen, so the kernel cannot hand out
    the same port twice (two replicas on one port made one of them a duplicate URL)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _config(path: Path, upstream: str) -> None:
    keys = []
    for name, key in KEYS.items():
        entry = f"{{key: '{key}', tenant: '{name}-{RUN}'"
        entry += f", rpm: {RPM}" if name == "rpm" else ""
        entry += f", max_budget_usd: {BUDGET}" if name == "budget" else ""
        keys.append(entry + "}")
    path.write_text(
        "model_list:\n"
        "  - {model_name: gpt-4o-mini, litellm_params: {model: openai/gpt-4o-mini, "
        f"api_base: '{upstream}', api_key: sk-fake}}}}\n"
        "router_settings: {num_retries: 0, timeout: 20}\n"
        f"cache: {{url: '{REDIS_URL}?prefix={PREFIX}', lease_ttl: {LEASE_TTL}}}\n"
        f"limits: {{url: '{REDIS_URL}'}}\n"
        "ledger: {enabled: false}\n"
        f"prices: {{gpt-4o-mini: {{input_cost_per_token: {PRICE}, "
        f"output_cost_per_token: {PRICE}}}}}\n"
        f"keys: [{', '.join(keys)}]\n"
    )


@dataclass
class Cluster:
    fake: FakeOpenAI
    replicas: list[subprocess.Popen[bytes]]
    urls: list[str]
    proxy: RoundRobinProxy
    client: httpx.Client

    def chat(self, key: str, text: str, url: str | None = None) -> httpx.Response:
        body = {
            "model": "gpt-4o-mini",
            "max_tokens": 40,  # the fake's answers are shorter: a budget's worst case holds
            "messages": [{"role": "user", "content": text}],
        }
        headers = {"Authorization": f"Bearer {KEYS[key]}"}
        target = url or self.proxy.url
        return self.client.post(f"{target}/v1/chat/completions", json=body, headers=headers)

    def spend(self) -> float:
        """Dollars spent on upstream calls, summed over the live replicas' /metrics."""
        total = 0.0
        for process, url in zip(self.replicas, self.urls, strict=True):
            if process.poll() is None:
                text = self.client.get(f"{url}/metrics").text
                total += sum(
                    float(v) for v in re.findall(r"thrifty_spend_usd_total\{.*\} (\S+)", text)
                )
        return total


def _wait_live(process: subprocess.Popen[bytes], url: str, deadline: float) -> None:
    while True:
        try:
            if httpx.get(f"{url}/health/liveness", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            out = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"replica {url} exited: {out}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"replica {url} did not start")
        time.sleep(0.2)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Terminate every process, then wait for each (killed after 20 s) and close its output."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def _serve(config: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = ["serve", "--config", str(config), "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(
        [sys.executable, "-c", "from thrifty.cli import main; main()", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    config = tmp_path_factory.mktemp("replicas") / "thrifty.yaml"
    with FakeOpenAI() as fake:
        _config(config, fake.base_url)
        ports = _free_ports(3)
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        replicas = [_serve(config, port, env) for port in ports]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        try:
            deadline = time.monotonic() + 60
            for process, url in zip(replicas, urls, strict=True):
                _wait_live(process, url, deadline)
            with RoundRobinProxy(urls) as proxy, httpx.Client(timeout=30) as client:
                yield Cluster(fake, replicas, urls, proxy, client)
        finally:
            _stop(replicas)
            _forget()


def _forget() -> None:
    """Delete this run's cache keys (the prefix, and the audit stream beside it) and key
    counters (never anything else of the Redis)."""
    client = redis.Redis.from_url(REDIS_URL)
    names = list(client.scan_iter(match=f"thrifty-replicas-{RUN}*", count=1000))
    if names:
        client.delete(*names)
    client.close()

    async def reset() -> None:
        limits = open_limits(REDIS_URL)
        for key in KEYS.values():
            await limits.reset(key_id(key))
        await limits.aclose()

    asyncio.run(reset())


def _workload() -> list[str]:
    """20 distinct questions, then each twice more in a shuffled order: 40 of 60 can hit."""
    questions = [f"replica question {i}" for i in range(20)]
    order = list(questions)
    rng = random.Random(17)
    for _ in range(2):
        again = list(questions)
        rng.shuffle(again)
        order += again
    return order


def _hits(cluster: Cluster, key: str, url: str | None) -> int:
    hits = 0
    for text in _workload():
        answer = cluster.chat(key, text, url)
        assert answer.status_code == 200, answer.text
        hits += answer.headers["x-thrifty-cache-status"] == "HIT"
    return hits


def test_the_hit_rate_across_three_replicas_equals_one_process(cluster: Cluster) -> None:
    solo = _hits(cluster, "solo", cluster.urls[0])  # one process, its own tenant's namespace
    before = dict(cluster.proxy.sent)
    multi = _hits(cluster, "multi", None)  # the same workload spread over the three
    assert solo == multi == 40
    spread = [cluster.proxy.sent[u] - before.get(u, 0) for u in cluster.urls]
    assert spread == [20, 20, 20]  # round robin: every replica took a third


def test_identical_concurrent_requests_make_one_upstream_call(cluster: Cluster) -> None:
    cluster.fake.delay = 1.0  # the first call is still in flight when the others arrive
    calls = cluster.fake.calls["chat"]
    before = dict(cluster.proxy.sent)
    try:
        with ThreadPoolExecutor(12) as pool:
            answers = list(
                pool.map(lambda _: cluster.chat("burst", "the same question"), range(12))
            )
    finally:
        cluster.fake.delay = 0.0
    assert [a.status_code for a in answers] == [200] * 12
    assert cluster.fake.calls["chat"] - calls == 1  # one leader, across processes
    assert len({a.json()["choices"][0]["message"]["content"] for a in answers}) == 1
    assert all(cluster.proxy.sent[u] - before.get(u, 0) == 4 for u in cluster.urls)


def test_a_keys_rpm_and_budget_hold_across_replicas(cluster: Cluster) -> None:
    cluster.fake.delay = 0.05  # requests overlap
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(12) as pool:
            rpm = list(pool.map(lambda i: cluster.chat("rpm", f"rpm {i}").status_code, range(15)))
        elapsed = time.monotonic() - started
        spent_before = cluster.spend()
        with ThreadPoolExecutor(12) as pool:
            budget = list(
                pool.map(lambda i: cluster.chat("budget", f"budget {i}").status_code, range(40))
            )
        spent = cluster.spend() - spent_before
    finally:
        cluster.fake.delay = 0.0
    assert set(rpm) == {200, 429}
    # a bucket of RPM requests refilling at RPM per minute, shared by the three replicas
    assert rpm.count(200) <= RPM + int(elapsed * RPM / 60)
    assert set(budget) == {200, 429}
    assert 0 < spent <= BUDGET


def _load_killing_a_replica(
    cluster: Cluster, send: Callable[[int], int], requests: int, kill_after: int
) -> list[int]:
    """``send(i)`` for each of ``requests`` on 6 threads (upstream answers slowed so some are
    in flight), SIGKILL replica 1 once ``kill_after`` answered; the statuses, in order."""
    cluster.fake.delay = 0.05
    done: list[int] = []

    def one(i: int) -> int:
        status = send(i)
        done.append(status)
        if len(done) == kill_after:
            os.kill(cluster.replicas[1].pid, signal.SIGKILL)
        return status

    try:
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(one, range(requests)))
    finally:
        cluster.fake.delay = 0.0
    assert cluster.replicas[1].wait(timeout=10) == -signal.SIGKILL
    return statuses


def test_a_replica_killed_mid_load_costs_the_clients_nothing(cluster: Cluster) -> None:
    failed, retried = cluster.proxy.failed, cluster.proxy.retried
    statuses = _load_killing_a_replica(
        cluster, lambda i: cluster.chat("kill", f"kill load {i}").status_code, 90, 30
    )
    assert statuses == [200] * 90  # 0 client errors
    assert cluster.proxy.failed == failed
    assert cluster.proxy.retried > retried  # the dead replica's turns went to the others
