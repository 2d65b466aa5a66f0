"""FakeAnthropic: a fake Anthropic Messages API on 127.0.0.1, for tests of the Anthropic provider.

It is a FAKE: it answers at once with made-up text ("Reply <n>: <last user text>"), or with a
tool call when the request offers tools and asks for one (``tool_choice`` of type ``tool`` or
``any``). It speaks ``POST /v1/messages`` as JSON and as Anthropic's SSE event stream, records
every request's body and headers, and can refuse the first calls with 429 and ``retry-after``.
Standard library only::

    with FakeAnthropic() as fake:
        provider = AnthropicProvider(fake.base_url, "test-key", "claude-test")
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(b.get("text", "") for b in content or [] if b.get("type") == "text")
    return ""


class FakeAnthropic:
    """A fake Anthropic endpoint in a background thread.

    Attributes:
        calls: number of ``/v1/messages`` requests answered (refused ones included).
        requests: (headers, body) of each request.
        fail_first: refuse this many calls with 429 (``retry-after: 0``).
        cache_write: prompt tokens reported as written to the prompt cache.
    """

    def __init__(self, *, fail_first: int = 0) -> None:
        self.calls = 0
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.fail_first = fail_first
        self.cache_write = 0
        """Prompt tokens reported as written to the prompt cache
        (``cache_creation_input_tokens``; none when 0)."""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, body: dict[str, Any], number: int) -> dict[str, Any]:
        """The Messages API answer to ``body``."""
        choice = body.get("tool_choice") or {}
        tools = body.get("tools") or []
        usage = {"input_tokens": 12, "output_tokens": 7, "cache_read_input_tokens": 3}
        if self.cache_write:
            usage["cache_creation_input_tokens"] = self.cache_write
        base = {
            "id": f"msg_{number}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "usage": usage,
        }
        if tools and choice.get("type") in ("tool", "any"):
            name = choice.get("name") or tools[0]["name"]
            return {
                **base,
                "stop_reason": "tool_use",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {
                        "type": "tool_use",
                        "id": f"toolu_{number}",
                        "name": name,
                        "input": {"city": "Paris"},
                    },
                ],
            }
        text = f"Reply {number}: {_last_user_text(body)}"
        return {**base, "stop_reason": "end_turn", "content": [{"type": "text", "text": text}]}

    def events(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """``message`` as the stream events Anthropic sends (text in two-word deltas)."""
        start = {k: v for k, v in message.items() if k not in ("content", "stop_reason")}
        start["usage"] = {**message["usage"], "output_tokens": 1}
        out: list[dict[str, Any]] = [
            {"type": "message_start", "message": {**start, "content": []}},
            {"type": "ping"},
        ]
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                out.append(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    }
                )
                words = block["text"].split(" ")
                for i in range(0, len(words), 2):
                    piece = " ".join(words[i : i + 2]) + (" " if i + 2 < len(words) else "")
                    out.append(
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": piece},
                        }
                    )
            else:
                out.append(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": block["id"],
                            "name": block["name"],
                            "input": {},
                        },
                    }
                )
                raw = json.dumps(block["input"])
                for part in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
                    out.append(
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": part},
                        }
                    )
            out.append({"type": "content_block_stop", "index": index})
        out.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"]},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            }
        )
        out.append({"type": "message_stop"})
        return out

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with fake._lock:
                    fake.calls += 1
                    number = fake.calls
                    fake.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if self.path != "/v1/messages":
                    self._send(
                        404,
                        {
                            "type": "error",
                            "error": {"type": "not_found_error", "message": self.path},
                        },
                    )
                    return
                if number <= fake.fail_first:
                    self._send(
                        429,
                        {
                            "type": "error",
                            "error": {"type": "rate_limit_error", "message": "slow down"},
                        },
                        {"retry-after": "0"},
                    )
                    return
                message = fake.answer(body, number)
                if not body.get("stream"):
                    self._send(200, message)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for event in fake.events(message):
                    self.wfile.write(
                        f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
                    )
                    self.wfile.flush()
                self.close_connection = True

        return Handler
