"""Server-sent events: OpenAI's ``data: {...}`` stream, and a response that stops on disconnect.

:class:`SSEResponse` watches the client while it streams: when the client goes away the
producing iterator is cancelled at once (even while it waits on a slow upstream) and closed, so
the upstream connection is closed too and stops generating tokens nobody reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import orjson
from starlette.types import Receive, Scope, Send

from thrifty.redact import hide_endpoints, redact_text

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(payload: Any) -> bytes:
    """One ``data:`` event carrying ``payload`` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def sse_error(message: str, *, type: str = "upstream_error", code: str | None = None) -> bytes:
    """An error event, as OpenAI sends when a stream fails after it started (the message
    built from an upstream's error: no URL or password in it, as in ``errors.api_error``)."""
    message = hide_endpoints(redact_text(message))
    return sse_event({"error": {"message": message, "type": type, "param": None, "code": code}})


class SSEResponse:
    """An ASGI response streaming ``events`` (bytes) as ``text/event-stream``.

    Args:
        events: the encoded events; closed (``aclose``) however the response ends.
        headers: extra response headers.
    """

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[bytes], headers: Mapping[str, str] | None = None):
        self.events = events
        self.headers = {**SSE_HEADERS, **(headers or {})}
        self.disconnected = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(b"content-type", b"text/event-stream; charset=utf-8")]
        raw += [
            (k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in self.headers.items()
        ]
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            self.disconnected = True
                            group.cancel_scope.cancel()
                            return

                group.start_soon(watch)
                try:
                    await send({"type": "http.response.start", "status": 200, "headers": raw})
                    async for event in self.events:
                        await send({"type": "http.response.body", "body": event, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except OSError:  # the client went away while we were writing
                    self.disconnected = True
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self.events.aclose()  # type: ignore[attr-defined]


def text_completion_chunks(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``text_completion`` answer as the chunks a stream would carry (one per choice)."""
    base: dict[str, Any] = {k: completion[k] for k in ("id", "created", "model") if k in completion}
    return [
        {
            **base,
            "object": "text_completion",
            "choices": [
                {
                    "index": choice.get("index", 0),
                    "text": choice.get("text", ""),
                    "logprobs": choice.get("logprobs"),
                    "finish_reason": choice.get("finish_reason"),
                }
            ],
        }
        for choice in completion.get("choices") or []
    ]


async def replay(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Stored chunks as SSE events, ending in ``data: [DONE]``."""
    for chunk in chunks:
        yield sse_event(chunk)
    yield DONE
