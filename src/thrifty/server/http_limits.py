"""Header limits for ``thrifty serve``: a size cap (431) and a header-read timeout (408).

uvicorn has neither on its httptools protocol: ``timeout_keep_alive`` only runs between
requests and any byte cancels it, and ``h11_max_incomplete_event_size`` applies to the h11
protocol only. So 800 clients that opened a connection and sent half a request line held 800
connections (and their file descriptors) for as long as they liked. This subclass of uvicorn's
protocol adds the two limits at the socket, before any ASGI code runs:

- from a connection's first moment (or the first byte of its next request) the request line and
  headers must arrive within ``header_timeout`` seconds, however slowly they trickle in;
- they must fit in ``max_header_bytes``.

The body is not timed here (a slow upload is legitimate; the body-size limits are the app's).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from thrifty.server.errors import APIError

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def _limits(config: Any) -> tuple[int, float]:
    """The served gateway's ``server.max_header_bytes`` and ``server.header_timeout``.

    uvicorn builds the protocol from its class (pickled by name into each worker process), so
    the limits cannot ride on the class: they come from the app each worker loaded from the
    config, found once through uvicorn's middleware wrappers and kept on uvicorn's config.
    """
    found = getattr(config, "_thrifty_header_limits", None)
    if found is None:
        found = (HeaderLimitedProtocol.max_header_bytes, HeaderLimitedProtocol.header_timeout)
        app = getattr(config, "loaded_app", None)
        for _ in range(8):  # ProxyHeadersMiddleware, MessageLoggerMiddleware, ...
            gateway = getattr(getattr(app, "state", None), "gateway", None)
            if gateway is not None:
                server = gateway.config.server
                found = (server.max_header_bytes, server.header_timeout)
                break
            app = getattr(app, "app", None)
        config._thrifty_header_limits = found
    return found


class HeaderLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size cap and a header-read deadline, both
    from the served gateway's config (``http=HeaderLimitedProtocol``); these defaults apply to
    an app that is not the gateway."""

    max_header_bytes = 32 * 1024
    header_timeout = 10.0

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.max_header_bytes, self.header_timeout = _limits(config)
        self._reading_headers = True
        self._header_bytes = 0  # bytes received since the request began (headers unfinished)
        self._parsed_bytes = 0  # the request line and headers parsed so far
        self._refused = False
        self._header_timer: asyncio.TimerHandle | None = None

    # --------------------------------------------------------------- the deadline
    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm()  # a pipelined request waits behind an answer still being sent
            return
        self._refuse(408, f"the request headers did not arrive within {self.header_timeout:g}s")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with an OpenAI error body and close the connection."""
        self._refused = True
        if self.transport.is_closing():
            return
        body = orjson.dumps(APIError(status, message, code="request_headers").body())
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()

    # --------------------------------------------------------------- uvicorn's hooks
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered and closing: the rest is not parsed
        if self._reading_headers:
            self._arm()  # the next request of a kept-alive connection starts its clock here
            self._header_bytes += len(data)
        super().data_received(data)
        if self._reading_headers and self._header_bytes > self.max_header_bytes:
            self._too_large()

    def _too_large(self) -> None:
        self._disarm()
        self._refuse(431, f"the request headers exceed {self.max_header_bytes} bytes")

    def on_url(self, url: bytes) -> None:
        self._parsed_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed_bytes += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._disarm()
        if self._refused or self._parsed_bytes > self.max_header_bytes:
            self._too_large()  # arrived whole in one read: refused before any ASGI code
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        # the whole request is in: whatever comes next is the next request's headers
        self._reading_headers = True
        self._header_bytes = self._parsed_bytes = 0
        if not self._refused:
            super().on_message_complete()


__all__ = ["HeaderLimitedProtocol"]
