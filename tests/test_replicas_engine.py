"""Many replicas, one semantic index on a vector engine: three ``thrifty serve`` processes behind
a round-robin proxy (:class:`~thrifty.testing.round_robin.RoundRobinProxy`, a FAKE load
balancer), sharing the machine's Redis for the exact cache and leases, and one vector engine
for the semantic index: a milvus-lite server in its own process (``python -m milvus_lite
server``), reached with ``milvus://127.0.0.1:PORT``, the client path of a Milvus server. A FAKE
upstream counts the calls.

What a user scaling out with the engine relies on: a question stored through one replica is
found reworded through every other at once (no catch-up, no local copy); identical concurrent
requests make one upstream call, reworded ones that follow make none; an invalidation through
one replica ends the semantic hits on all; a replica killed mid-load costs no client error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from conftest import REDIS_URL
from test_replicas import Cluster, _free_ports, _load_killing_a_replica, _serve, _stop, _wait_live
from thrifty.testing.fake_openai import FakeOpenAI
from thrifty.testing.round_robin import RoundRobinProxy

pytest.importorskip("milvus_lite", reason="pip install 'thrifty[milvus]'")
pytestmark = [pytest.mark.slow, pytest.mark.redis]

RUN = uuid.uuid4().hex[:12]
PREFIX = f"thrifty-replicas-engine-{RUN}:"
ADMIN = f"sk-admin-{RUN}"
ENGINE: list[int] = []  # the engine's port, once started
KEYS = {name: f"sk-{name}-{RUN}" for name in ("spread", "burst", "gone", "kill")}
#: Originals and their rewordings (the hashing embedder's cosine for each pair is above 0.6).
PAIRS = [
    ("How do I reset my password?", "how do i reset my password please"),
    ("How do I close my account?", "how do i close my account please"),
    ("Where can I download my invoice?", "where can i download my invoice please"),
    ("How long does a refund take?", "how long does a refund take please"),
    ("Can I change my email address?", "can i change my email address please"),
    ("How do I cancel my subscription?", "how do i cancel my subscription please"),
]


def _config(path: Path, upstream: str, engine_port: int) -> None:
    keys = ", ".join(f"{{key: '{key}', tenant: '{name}-{RUN}'}}" for name, key in KEYS.items())
    index = f"milvus://127.0.0.1:{engine_port}?collection=replicas_{RUN}&flush_every=512"
    path.write_text(
        "model_list:\n"
        "  - {model_name: gpt-4o-mini, litellm_params: {model: openai/gpt-4o-mini, "
        f"api_base: '{upstream}', api_key: sk-fake}}}}\n"
        "router_settings: {num_retries: 0, timeout: 20}\n"
        f"cache: {{url: '{REDIS_URL}?prefix={PREFIX}', lease_ttl: 5, semantic: true, "
        f"embedder: hashing, semantic_threshold: 0.6, semantic_index: '{index}'}}\n"
        "ledger: {enabled: false}\n"
        f"admin_key: '{ADMIN}'\n"
        f"keys: [{keys}]\n"
    )


def _engine(folder: Path, port: int) -> subprocess.Popen[bytes]:
    command = ["server", "--data-dir", str(folder), "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        [sys.executable, "-m", "milvus_lite", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_engine(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    from pymilvus import MilvusClient

    while True:
        try:
            MilvusClient(f"http://127.0.0.1:{port}").list_collections()
            return
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the milvus-lite server did not start") from None
            time.sleep(0.3)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("replicas-engine")
    engine_port, *ports = _free_ports(4)
    engine = _engine(folder / "engine", engine_port)
    ENGINE[:] = [engine_port]
    replicas: list[subprocess.Popen[bytes]] = []
    try:
        _wait_engine(engine_port, engine, time.monotonic() + 60)
        with FakeOpenAI() as fake:
            _config(folder / "thrifty.yaml", fake.base_url, engine_port)
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            deadline = time.monotonic() + 90
            # the first replica makes the collection; the others find it
            replicas.append(_serve(folder / "thrifty.yaml", ports[0], env))
            _wait_live(replicas[0], urls[0], deadline)
            replicas += [_serve(folder / "thrifty.yaml", port, env) for port in ports[1:]]
            for process, url in zip(replicas[1:], urls[1:], strict=True):
                _wait_live(process, url, deadline)
            with RoundRobinProxy(urls) as proxy, httpx.Client(timeout=30) as client:
                yield Cluster(fake, replicas, urls, proxy, client)
    finally:
        _stop([*replicas, engine])
        client = redis.Redis.from_url(REDIS_URL)
        names = list(client.scan_iter(match=f"{PREFIX}*", count=1000))
        if names:
            client.delete(*names)
        client.close()


def _chat(
    cluster: Cluster, key: str, text: str, url: str | None = None, *, store: bool = True
) -> httpx.Response:
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 40,
        "messages": [{"role": "user", "content": text}],
    }
    headers = {"Authorization": f"Bearer {KEYS[key]}"}
    if not store:  # served if stored, never stored: a look that changes nothing
        headers["X-Thrifty-Cache"] = "no-store"
    return cluster.client.post(
        f"{url or cluster.proxy.url}/v1/chat/completions", json=body, headers=headers
    )


def _status(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    return answer.headers["x-thrifty-cache-status"]


def _indexed() -> int:
    """Vectors in the engine's collection (read straight from the engine)."""
    from pymilvus import MilvusClient

    client = MilvusClient(f"http://127.0.0.1:{ENGINE[0]}")
    try:
        (row,) = client.query(f"replicas_{RUN}", filter="", output_fields=["count(*)"])
        return int(row["count(*)"])
    finally:
        client.close()


def _stored(cluster: Cluster, key: str, text: str, url: str, before: int) -> None:
    """Wait until the answer to ``text`` is stored and its vector is in the engine (a replica
    stores both after answering, in the background)."""
    deadline = time.monotonic() + 10
    while _status(_chat(cluster, key, text, url)) != "HIT" or _indexed() <= before:
        assert time.monotonic() < deadline, "the answer was never stored"
        time.sleep(0.05)


def test_a_question_stored_by_one_replica_is_found_reworded_by_every_other(
    cluster: Cluster,
) -> None:
    calls = cluster.fake.calls["chat"]
    statuses = []
    for i, (original, reworded) in enumerate(PAIRS):
        writer = cluster.urls[i % 3]
        before = _indexed()
        assert _status(_chat(cluster, "spread", original, writer)) == "MISS"
        _stored(cluster, "spread", original, writer, before)
        for n, reader in enumerate(cluster.urls):
            if reader != writer:  # the others, at once: no catch-up from the store
                variant = f"{reworded} {('now', 'thanks', 'today')[n]}"
                statuses.append(_status(_chat(cluster, "spread", variant, reader)))
    assert statuses == ["SEMANTIC_HIT"] * 2 * len(PAIRS)
    assert cluster.fake.calls["chat"] - calls == len(PAIRS)  # one call per original, no more


def test_identical_concurrent_requests_make_one_call_and_reworded_ones_none(
    cluster: Cluster,
) -> None:
    original, reworded = PAIRS[0]
    cluster.fake.delay = 1.0  # the first call is still in flight when the others arrive
    calls = cluster.fake.calls["chat"]
    try:
        with ThreadPoolExecutor(12) as pool:
            before = _indexed()
            first = list(pool.map(lambda _: _chat(cluster, "burst", original), range(12)))
            _stored(cluster, "burst", original, cluster.urls[0], before)
            after = list(pool.map(lambda _: _chat(cluster, "burst", reworded), range(12)))
    finally:
        cluster.fake.delay = 0.0
    assert [a.status_code for a in first + after] == [200] * 24
    assert cluster.fake.calls["chat"] - calls == 1  # one leader across processes; 0 duplicates
    # each replica's first answers by similarity; a semantic hit is also stored under its own
    # key, so a later identical one may be an exact hit
    assert {_status(a) for a in after} <= {"SEMANTIC_HIT", "HIT"}
    assert "SEMANTIC_HIT" in {_status(a) for a in after}
    assert len({a.json()["choices"][0]["message"]["content"] for a in first + after}) == 1


def test_an_invalidation_through_one_replica_ends_the_semantic_hits_on_all(
    cluster: Cluster,
) -> None:
    original, reworded = PAIRS[1]
    before = _indexed()
    assert _status(_chat(cluster, "gone", original, cluster.urls[0])) == "MISS"
    _stored(cluster, "gone", original, cluster.urls[0], before)
    assert _status(_chat(cluster, "gone", reworded, cluster.urls[1])) == "SEMANTIC_HIT"
    removed = cluster.client.post(
        f"{cluster.urls[2]}/admin/invalidate",
        json={"namespace": f"gone-{RUN}"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert removed.status_code == 200 and removed.json()["invalidated"] >= 1, removed.text
    for url in cluster.urls:
        assert _status(_chat(cluster, "gone", reworded + " now", url, store=False)) == "MISS"


def test_a_replica_killed_mid_load_costs_the_clients_nothing(cluster: Cluster) -> None:
    failed = cluster.proxy.failed

    def send(i: int) -> int:
        original, reworded = PAIRS[i % len(PAIRS)]
        text = original if i < len(PAIRS) else reworded + f" {i % 3}"
        return _chat(cluster, "kill", text).status_code

    statuses = [str(status) for status in _load_killing_a_replica(cluster, send, 60, 20)]
    assert statuses == ["200"] * 60  # 0 client errors
    assert cluster.proxy.failed == failed
