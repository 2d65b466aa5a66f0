"""Processes the gateway benchmarks compare: the fake upstream, thrifty's gateway, LiteLLM's proxy.

Each runs in its own process on loopback, with its output in a log file of the run's work
folder. LiteLLM lives in its own virtual environment (``$LITELLM_BIN``, default
``/work/venvs/litellm/bin/litellm``), installed with::

    python -m venv /work/venvs/litellm
    /work/venvs/litellm/bin/pip install 'litellm[proxy]==1.100.5'

When it is missing the benchmarks say so and measure thrifty alone.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
LITELLM = Path(os.environ.get("LITELLM_BIN", "/work/venvs/litellm/bin/litellm"))
MODEL = "fake-model"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A server process under test."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    children: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The process and its descendants (uvicorn may fork workers)."""
        found = [self.popen.pid]
        for pid in found:
            try:
                kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            found.extend(int(k) for k in kids)
        return found

    def rss_mb(self) -> float:
        """Resident memory of the process tree, MiB."""
        total = 0
        for pid in self.pids():
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
            except OSError:
                continue
        return total / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process tree so far."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _start(name: str, argv: list[str], port: int, workdir: Path, env: dict[str, str]) -> Proc:
    log = workdir / f"{name}.log"
    popen = subprocess.Popen(
        argv,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
        cwd=workdir,
    )
    return Proc(name, popen, port, log)


def wait_ready(proc: Proc, path: str, timeout: float = 120.0) -> None:
    """Poll ``GET path`` until it answers 200; raise with the log's tail if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            break
        try:
            conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        time.sleep(0.2)
    tail = proc.log.read_text(errors="replace")[-3000:]
    proc.stop()
    raise RuntimeError(f"{proc.name} did not become ready on port {proc.port}:\n{tail}")


def checkout(commit: str, folder: Path) -> Path:
    """The tree of ``commit`` of this repository, extracted into ``folder`` (no worktree left
    behind), for side-by-side runs of an older version."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", commit], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def start_fake_upstream(workdir: Path) -> Proc:
    port = free_port()
    proc = _start(
        "fake-upstream",
        [sys.executable, str(HERE / "_fake_upstream.py"), "--port", str(port)],
        port,
        workdir,
        {},
    )
    wait_ready(proc, "/v1/models")
    return proc


def start_thrifty(
    upstream: Proc,
    workdir: Path,
    *,
    cache_url: str | None = None,
    src: Path | None = None,
    name: str = "thrifty",
    extra: dict[str, object] | None = None,
) -> Proc:
    """``thrifty serve`` with one deployment on the fake upstream and a SQLite cache.

    ``src``: run the thrifty package found in this ``src`` folder instead of the installed one
    (e.g. an older commit's tree, to measure it side by side with the current code).
    ``extra``: more top-level config blocks (e.g. ``{"ledger": {"enabled": False}}``).
    """
    port = free_port()
    config = workdir / f"{name}.yaml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"openai/{MODEL}",
                            "api_base": f"{upstream.url}/v1",
                            "api_key": "sk-fake",
                        },
                    }
                ],
                "cache": {"url": cache_url or f"sqlite:///{workdir}/{name}-cache.db"},
                **(extra or {}),
            },
            indent=1,
        )
    )
    argv = [str(BIN / "thrifty"), "serve", "--config", str(config), "--port", str(port)]
    env = {} if src is None else {"PYTHONPATH": str(src)}
    proc = _start(name, [*argv, "--log-level", "warning"], port, workdir, env)
    wait_ready(proc, "/health/liveness")
    return proc


def litellm_available() -> bool:
    return LITELLM.exists()


def start_litellm(upstream: Proc, workdir: Path, *, cache: bool) -> Proc:
    """LiteLLM's proxy with the same deployment; ``cache`` turns on its in-memory cache."""
    port = free_port()
    config = workdir / f"litellm-{'cache' if cache else 'nocache'}.yaml"
    settings: dict[str, object] = {"drop_params": True, "set_verbose": False}
    if cache:
        settings.update({"cache": True, "cache_params": {"type": "local"}})
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"openai/{MODEL}",
                            "api_base": f"{upstream.url}/v1",
                            "api_key": "sk-fake",
                        },
                    }
                ],
                "litellm_settings": settings,
            },
            indent=1,
        )
    )
    argv = [str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    proc = _start("litellm", argv, port, workdir, env)
    wait_ready(proc, "/health/liveliness", timeout=180)
    return proc


def chat_body(prompt: str) -> bytes:
    return json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
    ).encode()


class Client:
    """A keep-alive HTTP/1.1 client that times one request at a time."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.reconnects = 0
        """Times a server closed the kept-alive connection (that request's time is not clean)."""

    def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[float, int, http.client.HTTPResponse]:
        """(seconds, status, response) of one POST, body read in full."""
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        for attempt in (0, 1):
            started = time.perf_counter()
            try:
                self.conn.request("POST", path, body, all_headers)
                response = self.conn.getresponse()
                response.read()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                if attempt:
                    raise
                self.reconnects += 1
                self.conn.close()
                continue
            return time.perf_counter() - started, response.status, response
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(round(q / 100 * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[index]
