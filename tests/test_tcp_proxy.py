"""TcpProxy on its own: forwards, dies (refused and cut), comes back on its port, stalls."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from thrifty.testing.tcp_proxy import TcpProxy


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def roundtrip(port: int, payload: bytes = b"ping", timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        sock.sendall(payload)
        return sock.recv(65536)


def answer(port: int) -> bytes:
    """What the far side answers, b"" when it closed or reset the connection instead."""
    try:
        return roundtrip(port)
    except ConnectionResetError:
        return b""


def test_forwards_dies_and_comes_back_on_the_same_port(echo_port: int) -> None:
    with TcpProxy("127.0.0.1", echo_port) as proxy:
        port = proxy.port
        assert roundtrip(port) == b"ping"
        held = socket.create_connection(("127.0.0.1", port), 2)
        held.sendall(b"a")
        assert held.recv(10) == b"a"

        proxy.stop()
        assert not proxy.running
        with pytest.raises(ConnectionRefusedError):
            roundtrip(port)
        held.settimeout(2)
        try:  # the open connection was cut: a reset or an end of stream, never an answer
            held.sendall(b"b")
            cut = held.recv(10)
        except ConnectionResetError:
            cut = b""
        held.close()
        assert cut == b""

        proxy.start()
        assert proxy.port == port and proxy.running
        assert roundtrip(port, b"back") == b"back"


def test_stall_holds_traffic_until_resumed(echo_port: int) -> None:
    with (
        TcpProxy("127.0.0.1", echo_port) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), 2) as sock,
    ):
        sock.sendall(b"one")
        assert sock.recv(10) == b"one"
        proxy.stall()
        sock.settimeout(0.3)
        sock.sendall(b"two")
        with pytest.raises(TimeoutError):
            sock.recv(10)  # accepted, never answered: a hung server
        proxy.resume()
        sock.settimeout(2)
        assert sock.recv(10) == b"two"


def test_unreachable_target_closes_the_client() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # nothing listens there
    with TcpProxy("127.0.0.1", dead_port) as proxy:
        assert answer(proxy.port) == b""
