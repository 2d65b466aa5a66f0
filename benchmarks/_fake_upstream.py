"""The fake upstream of the gateway benchmarks: a FAKE OpenAI endpoint that answers at once.

It measures the gateways, never a model: every ``POST`` gets the same canned
``chat.completion`` (with ``usage``) as soon as its body has arrived; ``GET /v1/models`` lists
one model. Raw asyncio (uvloop when installed), HTTP/1.1 keep-alive, so that the upstream itself
adds only tens of microseconds to each request. Run it in its own process::

    python benchmarks/_fake_upstream.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import json

CHAT = json.dumps(
    {
        "id": "chatcmpl-fake-upstream",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "fake-model",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "A canned answer from the fake upstream.",
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30},
    }
).encode()
MODELS = json.dumps(
    {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "fake"}]}
).encode()


def _response(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


CHAT_RESPONSE = _response(CHAT)
MODELS_RESPONSE = _response(MODELS)


class FakeUpstreamProtocol(asyncio.Protocol):
    """Parses pipelined HTTP/1.1 requests just enough to answer each one."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            get = head.startswith("GET")
            assert self.transport is not None
            self.transport.write(MODELS_RESPONSE if get else CHAT_RESPONSE)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FakeUpstreamProtocol, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
