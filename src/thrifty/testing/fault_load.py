"""A fault-and-load harness: a real ``thrifty serve`` process under steady load while a fault
is injected and taken back; every answer is checked.

Shared by the CI fault suite (``tests/test_faults.py``, seconds per scenario) and the fault
benchmark (``benchmarks/bench_faults.py``, longer runs and a soak). Everything is on loopback:
two FAKE upstreams (:class:`~thrifty.testing.fake_openai.FakeOpenAI`) answer ``gpt-4o-mini``
(``bad``, the one faults are injected into) and its fallback ``backup`` (``good``) with the same
text, so an answer is right whichever served it; the cache store (the machine's Redis or
PostgreSQL) is reached through a :class:`~thrifty.testing.tcp_proxy.TcpProxy`, the part that
"dies" (the servers themselves are never stopped). A fault is a pair of callables, ``inject``
and ``restore``. Each request is recorded with its phase (before, during, after the fault), its
latency, its HTTP status (0: no HTTP answer at all) and whether its answer was the right one.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.testing.fake_openai import FakeOpenAI

MODEL = "gpt-4o-mini"


def same_reply(request: dict[str, Any], number: int) -> str:
    """Both upstreams' text: the same for the same question, whichever answers it."""
    return f"Answer to: {request['messages'][-1]['content']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_config(bad: str, good: str, cache_url: str, **router: Any) -> dict[str, Any]:
    """``gpt-4o-mini`` on ``bad`` falling back to ``backup`` on ``good``; short timeouts so a
    fault is noticed within a second; ``router`` overrides router settings."""

    def deployment(name: str, base: str) -> dict[str, Any]:
        return {
            "model_name": name,
            "litellm_params": {"model": f"openai/{MODEL}", "api_base": base, "api_key": "sk-x"},
        }

    settings = {
        "num_retries": 1,
        "retry_base_delay": 0,
        "timeout": 1.0,
        "stream_timeout": 0.5,
        "allowed_fails": 1,
        "cooldown_time": 5,
        "fallbacks": [{MODEL: ["backup"]}],
        **router,
    }
    return {
        "model_list": [deployment(MODEL, bad), deployment("backup", good)],
        "router_settings": settings,
        "cache": {"url": cache_url},
    }


@dataclass
class GatewayProcess:
    """``thrifty serve`` in its own process (so it can be killed with SIGKILL)."""

    config: dict[str, Any]
    workdir: Path
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        path = self.workdir / "gateway.yaml"
        path.write_text(json.dumps(self.config))  # JSON is YAML
        # this interpreter (and so this thrifty, PYTHONPATH included), not whatever is on PATH
        argv = [sys.executable, "-c", "from thrifty.cli import main; main()"]
        argv += ["serve", "--config", str(path), "--port", str(self.port)]
        log = (self.workdir / "gateway.log").open("ab")
        self.popen = subprocess.Popen(
            [*argv, "--log-level", "error"], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                break
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health/liveness")
                ok = conn.getresponse().status == 200
                conn.close()
                if ok:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        tail = (self.workdir / "gateway.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"the gateway did not start:\n{tail}")

    def restart(self) -> None:
        """Start again on the same port and files (after :meth:`kill9` or :meth:`stop`)."""
        self.start()

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no flush, no drain."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def rss_mb(self) -> float:
        """Resident memory of the gateway process, MiB."""
        assert self.popen is not None
        pages = int(Path(f"/proc/{self.popen.pid}/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Outcome:
    """One request of the load."""

    at: float
    """When it was sent, seconds since the load began."""
    seconds: float
    status: int
    """The HTTP status; 0 when no HTTP answer came (refused, reset, timed out)."""
    right: bool
    """A 200 with the right answer, complete (a stream ended with ``[DONE]``, no error event)."""
    phase: str
    """``before``, ``during`` or ``after`` the fault."""
    cache: str = ""
    route: str = ""


def _content(raw: bytes, stream: bool) -> tuple[str, bool]:
    """(the answer's text, whether it is complete) of a chat response body."""
    if not stream:
        body = json.loads(raw)
        return body["choices"][0]["message"]["content"], True
    text, done, broken = [], False, False
    for line in raw.decode().splitlines():
        if line == "data: [DONE]":
            done = True
        elif line.startswith("data: {"):
            event = json.loads(line[6:])
            broken = broken or "error" in event
            for choice in event.get("choices", []):
                text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text), done and not broken


class Load:
    """``threads`` clients sending chat requests at ``rate`` per second in all.

    Args:
        port: the gateway's.
        question: the i-th question to ask (a pool of repeated ones makes hits; a new one per
            request makes every request reach an upstream).
        stream: ask for streamed answers.
    """

    def __init__(
        self,
        port: int,
        question: Callable[[int], str],
        *,
        rate: float,
        threads: int = 8,
        stream: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.port, self.question, self.rate, self.threads = port, question, rate, threads
        self.stream, self.timeout = stream, timeout
        self.outcomes: list[Outcome] = []
        self.phase = "before"
        self._counter = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self.started = 0.0

    def _next(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _send(self, conn: http.client.HTTPConnection, text: str) -> tuple[int, bool, str, str]:
        body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
        if self.stream:
            body["stream"] = True
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Content-Type": "application/json"})  # fmt: skip
        response = conn.getresponse()
        raw = response.read()
        if response.status != 200:
            return response.status, False, "", ""
        content, complete = _content(raw, self.stream)
        right = complete and content == f"Answer to: {text}"
        return (
            200,
            right,
            response.getheader("x-thrifty-cache-status") or "",
            response.getheader("x-thrifty-route") or "",
        )

    def _work(self, interval: float) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        due = time.perf_counter()
        while not self._stop.is_set():
            n = self._next()
            text = self.question(n)
            sent = time.perf_counter()
            phase = self.phase
            try:
                status, right, cache, route = self._send(conn, text)
            except (OSError, http.client.HTTPException):
                status, right, cache, route = 0, False, "", ""
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            done = time.perf_counter()
            outcome = Outcome(sent - self.started, done - sent, status, right, phase, cache, route)
            with self._lock:
                self.outcomes.append(outcome)
            due = max(due + interval, done - interval)  # no burst to catch up after a stall
            self._stop.wait(max(0.0, due - time.perf_counter()))
        conn.close()

    def __enter__(self) -> Load:
        self.started = time.perf_counter()
        interval = self.threads / self.rate
        for _ in range(self.threads):
            worker = threading.Thread(target=self._work, args=(interval,), daemon=True)
            self._workers.append(worker)
            worker.start()
            time.sleep(interval / self.threads)  # spread the clients' phases
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout + 5)

    def now(self) -> float:
        return time.perf_counter() - self.started


@contextmanager
def upstreams() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    """``bad`` and ``good``: FAKE upstreams giving the same answer to the same question."""
    with FakeOpenAI(same_reply) as bad, FakeOpenAI(same_reply) as good:
        yield bad, good


@dataclass
class Report:
    """What a scenario's load saw."""

    name: str
    outcomes: list[Outcome]
    fault_at: float
    restored_at: float
    recovered_after: float | None
    """Seconds from the restore to the first answer from the restored part (a cache hit for a
    backend, the primary deployment for an upstream); None if none came."""

    def of(self, phase: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.phase == phase]

    @property
    def errors(self) -> int:
        """Requests without a 200."""
        return sum(o.status != 200 for o in self.outcomes)

    @property
    def wrong(self) -> int:
        """200s whose answer was not the right one, or incomplete."""
        return sum(o.status == 200 and not o.right for o in self.outcomes)

    def latency(self, phase: str) -> dict[str, float]:
        """p50, p99 and max milliseconds of one phase's requests."""
        values = sorted(o.seconds * 1000 for o in self.of(phase))
        if not values:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0}

        def pct(q: float) -> float:
            return values[min(len(values) - 1, round(q * (len(values) - 1)))]

        return {"p50": pct(0.5), "p99": pct(0.99), "max": values[-1]}


def run_scenario(
    name: str,
    load: Load,
    inject: Callable[[], None],
    restore: Callable[[], None],
    *,
    before: float,
    during: float,
    after: float,
    recovered: Callable[[Outcome], bool],
) -> Report:
    """Run ``load`` for ``before`` seconds, inject the fault for ``during``, restore it, and run
    ``after`` seconds more."""
    with load:
        time.sleep(before)
        fault_at = load.now()
        load.phase = "during"
        inject()
        time.sleep(during)
        restore()
        restored_at = load.now()
        load.phase = "after"
        time.sleep(after)
    back = [
        o.at + o.seconds - restored_at for o in load.outcomes if o.phase == "after" and recovered(o)
    ]
    return Report(name, load.outcomes, fault_at, restored_at, min(back) if back else None)


#: The upstream faults: (how to inject it into ``bad``, how to take it back, streamed?).
UPSTREAM_FAULTS: dict[
    str, tuple[Callable[[FakeOpenAI], None], Callable[[FakeOpenAI], None], bool]
] = {
    "upstream-500": (lambda f: f.fail_next(10**6, 500), lambda f: f.reset(), False),
    "upstream-429": (lambda f: f.fail_next(10**6, 429), lambda f: f.reset(), False),
    "upstream-hang": (
        lambda f: setattr(f, "delay", 3.0),
        lambda f: setattr(f, "delay", 0.0),
        False,
    ),
    "upstream-reset": (
        lambda f: setattr(f, "stream_reset_after", 0),
        lambda f: setattr(f, "stream_reset_after", None),
        True,
    ),
    "upstream-stall": (
        lambda f: setattr(f, "stream_stall_after", 0),
        lambda f: setattr(f, "stream_stall_after", None),
        True,
    ),
}


def _numbered(prefix: str) -> Callable[[int], str]:
    return lambda n: f"{prefix} {n}"


def upstream_scenarios(
    names: list[str],
    workdir: Path,
    *,
    rate: float,
    before: float,
    during: float,
    after: float,
    **router: Any,
) -> list[Report]:
    """Each of :data:`UPSTREAM_FAULTS` named, in turn, on ``bad`` of one gateway, under load of
    new questions (every request reaches an upstream); the fallback ``good`` must answer them
    all. ``router``: router settings (e.g. a short ``cooldown_time``)."""
    tag = os.urandom(4).hex()
    reports = []
    with upstreams() as (bad, good):
        config = gateway_config(bad.base_url, good.base_url, "memory://", **router)
        gw = GatewayProcess(config, workdir)
        gw.start()
        try:
            for name in names:
                inject, restore, stream = UPSTREAM_FAULTS[name]
                prefix = f"{name} {tag}"
                load = Load(gw.port, _numbered(prefix),
                            rate=rate, stream=stream)  # fmt: skip
                reports.append(
                    run_scenario(
                        name, load, functools.partial(inject, bad),
                        functools.partial(restore, bad),
                        before=before, during=during, after=after,
                        recovered=lambda o: o.route.startswith(MODEL),
                    )
                )  # fmt: skip
        finally:
            gw.stop()
    return reports


def backend_scenario(
    name: str,
    target: tuple[str, int],
    url_at: Callable[[int], str],
    workdir: Path,
    *,
    rate: float,
    before: float,
    during: float,
    after: float,
    questions: int = 50,
) -> Report:
    """The cache store behind a proxy that is killed (connections cut, new ones refused) and
    restarted, under load on ``questions`` repeated questions (hits once warm).

    Args:
        target: the real server (host, port).
        url_at: the cache URL for the proxy's port (a private prefix or table).
    """
    from thrifty.testing.tcp_proxy import TcpProxy

    with upstreams() as (bad, good), TcpProxy(*target) as proxy:
        config = gateway_config(bad.base_url, good.base_url, url_at(proxy.port))
        gw = GatewayProcess(config, workdir)
        gw.start()
        try:
            load = Load(gw.port, lambda n: f"question {n % questions}", rate=rate)
            return run_scenario(
                name, load, proxy.stop, proxy.start,
                before=before, during=during, after=after,
                recovered=lambda o: o.cache == "HIT",
            )  # fmt: skip
        finally:
            gw.stop()


@dataclass
class KillReport:
    """A gateway killed with SIGKILL mid-load on a SQLite cache, then started again."""

    report: Report
    integrity: str
    """``PRAGMA integrity_check`` of the cache file right after the kill (before a restart)."""
    entries_after: int
    answers_after: int
    right_after: int
    """Every question asked again after the restart: how many answered, how many right."""


def sqlite_facts(db: Path) -> tuple[str, int]:
    """(``PRAGMA integrity_check``, rows of the largest table) of a SQLite file, read through
    APSW as the store does (two SQLite libraries in one process do not see each other's locks).
    """
    import apsw

    conn = apsw.Connection(str(db))
    try:
        integrity = str(conn.execute("PRAGMA integrity_check").fetchall()[0][0])
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        counts = [int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] or 0)
                  for t in tables]  # fmt: skip
    finally:
        conn.close()
    return integrity, max(counts, default=0)


def kill9_scenario(
    workdir: Path, *, rate: float, before: float, down: float, after: float, questions: int = 50
) -> KillReport:
    """Load with writes on a SQLite cache; SIGKILL the gateway; ``down`` seconds later start
    it again on the same file and port; then ask every question once more."""
    db = workdir / "kill9.db"
    with upstreams() as (bad, good):
        gw = GatewayProcess(gateway_config(bad.base_url, good.base_url, f"sqlite:///{db}"), workdir)
        facts: list[tuple[str, int]] = []

        def kill_and_look() -> None:  # the file as the killed process left it
            gw.kill9()
            facts.append(sqlite_facts(db))

        gw.start()
        try:
            load = Load(gw.port, lambda n: f"question {n % (questions * 4)}", rate=rate)
            report = run_scenario(
                "kill-9-sqlite", load, kill_and_look, gw.restart,
                before=before, during=down, after=after,
                recovered=lambda o: o.status == 200,
            )  # fmt: skip
            check = Load(gw.port, lambda n: f"question {(n - 1) % (questions * 4)}", rate=200)
            with check:
                while len(check.outcomes) < questions * 4:
                    time.sleep(0.05)
            outcomes = check.outcomes[: questions * 4]
        finally:
            gw.stop()
    answered = sum(o.status == 200 for o in outcomes)
    right = sum(o.right for o in outcomes)
    integrity, entries = facts[0]
    return KillReport(report, integrity, entries, answered, right)
