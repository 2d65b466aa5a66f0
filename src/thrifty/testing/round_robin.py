"""A FAKE load balancer for multi-replica tests: round-robin HTTP/1.1 over several gateways.

Each client request goes to the next replica in turn. Like a real load balancer (nginx's
``proxy_next_upstream error`` with ``non_idempotent``, HAProxy's ``retry-on conn-failure
empty-response``), a replica that refuses the connection, or resets it or closes it without
answering, is skipped and the same request goes to the next one: a replica killed mid-load
costs its clients nothing. An answer that arrived is relayed as it is, never retried.
Retrying a POST is safe in front of thrifty for the reason the test checks: an identical request
is answered from the shared cache or coalesced onto the one in flight.

    with RoundRobinProxy([url1, url2, url3]) as proxy:
        httpx.post(f"{proxy.url}/v1/chat/completions", json=...)
        proxy.retried   # requests sent again to another replica

Deliberately small: one request per client connection (answers say ``connection: close``),
``content-length`` bodies only (no chunked uploads), the whole answer read before it is relayed
(streams arrive at once). It runs an asyncio loop on a daemon thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from urllib.parse import urlsplit

_HEAD_LIMIT = 65536


class RoundRobinProxy:
    """Listens on a free loopback port and spreads requests over ``backends`` (base URLs).

    Attributes:
        sent: requests answered, by backend URL.
        retried: requests sent again after a backend refused or dropped them.
        failed: requests no backend answered (the client got a 502).
    """

    def __init__(self, backends: list[str], *, host: str = "127.0.0.1") -> None:
        if not backends:
            raise ValueError("a round-robin proxy needs at least one backend")
        self.backends = backends
        self._targets = [_host_port(url) for url in backends]
        self.sent: Counter[str] = Counter()
        self.retried = 0
        self.failed = 0
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, host, 0), self._loop
        ).result(10)
        self.port: int = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop listening and end the proxy's thread."""
        if not self._thread.is_alive():
            return

        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> RoundRobinProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- the loop
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if request is not None:
                writer.write(await self._forward(request))
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away or sent what this small proxy does not parse
        finally:
            writer.close()

    async def _forward(self, request: bytes) -> bytes:
        start = self._next
        self._next = (self._next + 1) % len(self._targets)
        for i in range(len(self._targets)):
            index = (start + i) % len(self._targets)
            answer = await _exchange(self._targets[index], request)
            if answer:
                self.sent[self.backends[index]] += 1
                return answer
            self.retried += 1  # refused, or dropped before a byte: the next replica
        self.failed += 1
        body = b'{"error": {"message": "no replica answered", "type": "bad_gateway"}}'
        return (
            b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request, its ``connection`` header replaced by ``close``; None at a clean EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as eof:
        if not eof.partial:
            return None
        raise
    if len(head) > _HEAD_LIMIT:
        raise ValueError("request head too large")
    lines = head[:-4].split(b"\r\n")
    length = 0
    kept = [lines[0]]
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value.strip())
        elif lowered == b"transfer-encoding":
            raise ValueError("chunked request bodies are not supported")
        if lowered not in (b"connection", b"keep-alive"):
            kept.append(line)
    kept.append(b"connection: close")
    body = await reader.readexactly(length) if length else b""
    return b"\r\n".join(kept) + b"\r\n\r\n" + body


async def _exchange(target: tuple[str, int], request: bytes) -> bytes:
    """Send ``request`` to ``target`` and read its whole answer; b"" if the backend refused
    the connection or closed it without answering."""
    try:
        reader, writer = await asyncio.open_connection(*target)
    except OSError:
        return b""
    try:
        writer.write(request)
        await writer.drain()
        return await reader.read()  # the backend closes after its answer (connection: close)
    except OSError:
        return b""
    finally:
        writer.close()


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"backend {url!r}: give http://host:port")
    return parts.hostname, parts.port


__all__ = ["RoundRobinProxy"]
