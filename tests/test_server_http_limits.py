"""``thrifty serve``'s header limits, over real sockets: half-open and trickling clients are
cut off within the header timeout while the gateway keeps answering; oversized headers get 431.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from _gateway import fake_config
from thrifty.cli import serve as serve_cmd
from thrifty.server.app import create_app
from thrifty.server.config import ServerSettings
from thrifty.server.http_limits import HeaderLimitedProtocol
from thrifty.testing.fake_openai import FakeOpenAI

TIMEOUT = 1.0
HALF_OPEN = 800


@contextmanager
def limited_gateway(fake: FakeOpenAI, **limits: Any) -> Iterator[tuple[str, int]]:
    """The gateway on uvicorn with the header limits, as ``thrifty serve`` runs it."""
    server_settings = ServerSettings(header_timeout=TIMEOUT, max_header_bytes=4096, **limits)
    app = create_app(fake_config(fake.base_url, server=server_settings.model_dump()))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options = serve_cmd.connection_limits(server_settings)
    config = uvicorn.Config(app, log_level="warning", access_log=False, backlog=2048, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the gateway did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    """Whether the server closed ``sock`` (EOF, perhaps after a 408) within ``wait`` seconds."""
    sock.settimeout(wait)
    try:
        while sock.recv(4096):
            pass
        return True
    except (TimeoutError, BlockingIOError):
        return False
    except ConnectionResetError:
        return True


def test_serve_uses_the_limited_protocol() -> None:
    options = serve_cmd.connection_limits(ServerSettings(max_connections=50))
    assert options["http"] is HeaderLimitedProtocol  # a class uvicorn can pickle into workers
    assert options["limit_concurrency"] == 50


def test_half_open_connections_are_freed_and_the_gateway_answers(fake: FakeOpenAI) -> None:
    with limited_gateway(fake) as (url, port):
        held: list[socket.socket] = []
        try:
            for i in range(HALF_OPEN):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                if i % 2:  # half of them send half a request; the rest nothing at all
                    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
                held.append(sock)
            started = time.monotonic()
            with httpx.Client(timeout=5) as client:
                assert client.get(f"{url}/health/liveness").status_code == 200
                chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
                answer = client.post(f"{url}/v1/chat/completions", json=chat)
                assert answer.status_code == 200
            closed = sum(closed_by_server(s, max(0.05, started + TIMEOUT + 2 - time.monotonic()))
                         for s in held)  # fmt: skip
            assert closed == HALF_OPEN
        finally:
            for sock in held:
                sock.close()


def test_trickled_headers_are_cut_at_the_deadline(fake: FakeOpenAI) -> None:
    with limited_gateway(fake) as (_, port):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        started = time.monotonic()
        try:
            for _ in range(int(TIMEOUT * 10) + 10):  # one header byte every 0.1 s
                sock.sendall(b"G" if time.monotonic() - started < 0.05 else b"x")
                time.sleep(0.1)
        except OSError:
            pass  # the server hung up: the point
        reply = b""
        try:
            sock.settimeout(2)
            while chunk := sock.recv(4096):
                reply += chunk
        except OSError:
            pass
        sock.close()
        assert time.monotonic() - started < TIMEOUT + 2
        assert reply == b"" or reply.startswith(b"HTTP/1.1 4")


def test_oversized_headers_get_431(fake: FakeOpenAI) -> None:
    with limited_gateway(fake) as (url, _), httpx.Client(timeout=5) as client:
        response = client.get(f"{url}/health/liveness", headers={"x-big": "a" * 10_000})
        assert response.status_code == 431
        assert response.json()["error"]["code"] == "request_headers"
        assert client.get(f"{url}/health/liveness").status_code == 200


def test_slow_body_and_keep_alive_are_not_cut(fake: FakeOpenAI) -> None:
    """The deadline is for headers only: a body may take longer; a kept-alive connection
    carries several requests."""
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    with limited_gateway(fake) as (url, port):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        head = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        )
        head += b"Content-Length: %d\r\n\r\n" % len(body)
        sock.sendall(head)
        for i in range(0, len(body), len(body) // 3 + 1):  # the body over ~1.5 x the timeout
            time.sleep(TIMEOUT / 2)
            sock.sendall(body[i : i + len(body) // 3 + 1])
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        sock.close()
        with httpx.Client(timeout=5) as client:
            for _ in range(3):
                assert client.get(f"{url}/health/liveness").status_code == 200
                time.sleep(TIMEOUT / 2)
