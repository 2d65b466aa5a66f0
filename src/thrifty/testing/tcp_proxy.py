"""A FAKE network hop for outage tests: a TCP proxy you can kill, stall and bring back.

Put it between a store and the machine's real Redis or PostgreSQL, then ``stop()`` it to make
the backend "die" (every open connection is cut, new ones are refused) and ``start()`` it to
bring the backend "back" on the same port, without touching the real server::

    with TcpProxy("127.0.0.1", 6379) as proxy:
        cache = Cache(f"redis://127.0.0.1:{proxy.port}/0")
        proxy.stop()    # an outage: refused and reset
        proxy.start()   # the server is back
        proxy.stall()   # a hung server: connections accepted, nothing answered
        proxy.resume()

It runs an asyncio loop on a daemon thread; every method is safe to call from any other thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_CHUNK = 65536


class TcpProxy:
    """Forwards ``host:port`` (a free port unless given) to ``target_host:target_port``.

    Args:
        target_host, target_port: the real server.
        host, port: where the proxy listens (``port=0``: a free port, kept across restarts).
        start: listen at once (else call :meth:`start`).
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        start: bool = True,
    ) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"tcp-proxy->{target_port}", daemon=True
        )
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        if start:
            self.start()

    # ------------------------------------------------------------------ control
    @property
    def running(self) -> bool:
        """True while the proxy accepts connections (stalled or not)."""
        return self._server is not None

    def start(self) -> None:
        """Listen (again, on the same port) and forward."""
        self._run(self._start())

    def stop(self) -> None:
        """Refuse new connections and cut every open one: the backend is "down"."""
        self._run(self._stop())

    def stall(self) -> None:
        """Keep accepting, forward nothing: the backend "hangs" (timeouts, not refusals)."""
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        """Forward again what a :meth:`stall` held back, and everything after."""
        self._loop.call_soon_threadsafe(self._flowing.set)

    def close(self) -> None:
        """Stop and end the proxy's thread."""
        if self._thread.is_alive():
            self._run(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"TcpProxy({self.host}:{self.port} -> {self.target[0]}:{self.target[1]}, {state})"

    # ----------------------------------------------------------------- the loop
    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        if self._server is not None:
            return
        self._flowing.set()
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # cut at once, as a crashed server's kernel would
        self._writers.clear()
        self._flowing.set()  # release pumps held by a stall, so they see the cut and end
        if server is not None:
            await server.wait_closed()

    async def _shutdown(self) -> None:
        """Stop, then end the connection handlers still running (a loop closed under them
        leaves "Task was destroyed but it is pending" behind)."""
        await self._stop()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._flowing.wait()  # stalled: the client connected, nobody answers
            if self._server is None:
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:  # reset or aborted: the other side sees its connection cut
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()


__all__ = ["TcpProxy"]
