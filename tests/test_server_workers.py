"""``thrifty serve --workers 2`` as a real process: every worker's requests show in /metrics."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from thrifty.testing.fake_openai import FakeOpenAI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chat_requests(metrics: str) -> float:
    pattern = r'thrifty_requests_total\{endpoint="chat",model="gpt-4o-mini",status="200"\} (\S+)'
    return sum(float(v) for v in re.findall(pattern, metrics))


def test_metrics_sum_over_workers(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        config = tmp_path / "thrifty.yaml"
        config.write_text(
            "model_list:\n"
            f"  - {{model_name: gpt-4o-mini, litellm_params: {{model: openai/gpt-4o-mini, "
            f"api_base: '{fake.base_url}', api_key: sk-fake}}}}\n"
            "cache: {url: 'memory://'}\n"
        )
        port = free_port()
        shared = tmp_path / "metrics"
        shared.mkdir()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from thrifty.cli import main; main()",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--workers",
                "2",
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health/liveness", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, server.stdout.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.2)
            time.sleep(1.0)  # let the second worker come up too
            for i in range(20):  # a new connection each time: both workers get some
                answer = httpx.post(
                    f"{base}/v1/chat/completions",
                    json={
                        "model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": f"q{i}"}],
                    },
                )
                assert answer.status_code == 200
            for _ in range(3):  # whichever worker answers the scrape sees all requests
                assert chat_requests(httpx.get(f"{base}/metrics").text) == 20
            # Both workers answered some of them (each writes its own counter file).
            assert len(list(shared.glob("counter_*.db"))) == 2
        finally:
            server.terminate()
            server.wait(timeout=20)
            if server.stdout is not None:
                server.stdout.close()
