"""FakeOpenAI: a fake OpenAI-compatible upstream on 127.0.0.1, for tests and benchmarks.

It is a FAKE: it answers at once with made-up text, so it measures thrifty itself (hits,
coalescing, streaming, accounting), never a model. It speaks enough of the wire format for the
official SDKs: ``POST /v1/chat/completions`` (JSON, or SSE with ``stream: true`` ending in
``data: [DONE]``), ``POST /v1/embeddings`` (float or base64), ``GET /v1/models``. It counts the
calls it receives, so a test can assert that a cache hit never reached it. The gateway's tests
reuse it as their upstream.

Built on the standard library only (``http.server``), so it needs no optional dependency::

    with FakeOpenAI() as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert fake.calls["chat"] == 1
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import sys
import threading
import time
from base64 import b64encode
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from thrifty.accounting.tokens import count_messages, count_text

#: The fakes started and not stopped yet, by base URL (an in-process adapter finds them here:
#: :mod:`thrifty.testing.inprocess`).
RUNNING: dict[str, FakeOpenAI] = {}

#: Seconds a stalled stream holds its connection at most (``stream_stall_after``).
STALL_SECONDS = 300.0

#: ``reply(request_body, call_number) -> text``; the default echoes the last message.
ReplyFn = Callable[[dict[str, Any], int], str]


def echo_reply(request: dict[str, Any], number: int) -> str:
    """``"Reply <n>: <last message>"``: a new call gets a visibly different answer."""
    messages = request.get("messages") or [{}]
    content = messages[-1].get("content", "")
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return f"Reply {number}: {content}"


def fake_embedding(text: str, dimensions: int = 8) -> list[float]:
    """A deterministic unit-free vector derived from the text's hash."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dimensions)]


class FakeOpenAI:
    """A fake OpenAI-compatible server in a background thread.

    Args:
        reply: builds the assistant text of each chat call.
        delay: seconds to wait before answering (to test coalescing and timeouts).

    Attributes:
        calls: requests received per endpoint (``chat``, ``embeddings``, ``models``).
        requests: every request body received, in order.
        chunk_delay: seconds between two streamed chunks (to test clients that hang up).
        streams_abandoned: streams the client closed before their end (counted when a write
            fails), so a test can see that a gateway closed its upstream connection.
        failure_headers: headers sent with every ``fail_next`` error (e.g. ``Retry-After``).
    """

    def __init__(self, reply: ReplyFn = echo_reply, *, delay: float = 0.0) -> None:
        self.reply = reply
        self.delay = delay
        self.calls: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self.stream_error_after: int | None = None
        """Send an SSE error event instead of the chunk at this position."""
        self.stream_cut_after: int | None = None
        """End the stream (cleanly, without ``[DONE]``) before the chunk at this position."""
        self.stream_stall_after: int | None = None
        """Send nothing more from the chunk at this position on, holding the connection open
        (until the client hangs up or the fake stops): an upstream that stalls mid-stream."""
        self.stream_reset_after: int | None = None
        """Drop the connection (TCP reset) before the chunk at this position."""
        self._stopped = threading.Event()
        self.chunk_delay = 0.0
        self.streams_abandoned = 0
        self.failure_headers: dict[str, str] = {}
        self.cached_tokens = 0
        """Prompt tokens reported as read from the provider's prompt cache (at most all of
        them), in ``usage.prompt_tokens_details.cached_tokens`` as OpenAI reports them."""
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]  # bound to 127.0.0.1 in __init__
        return f"http://127.0.0.1:{port}/v1"

    def fail_next(self, times: int = 1, status: int = 500) -> None:
        """Answer the next ``times`` requests with an OpenAI-style error of ``status``."""
        with self._lock:
            self._failures.extend([status] * times)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.requests.clear()
            self._failures.clear()

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        RUNNING[self.base_url] = self
        return self

    def stop(self) -> None:
        RUNNING.pop(self.base_url, None)
        self._stopped.set()  # wakes the handlers of stalled streams
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ answers
    @staticmethod
    def refusal(body: dict[str, Any]) -> str | None:
        """Why OpenAI would answer 400 to sizes the fake would build (``n`` answers,
        ``dimensions`` floats) for ages: a fuzzer sends ``n: 430991302088``."""
        for name, most in (("n", MAX_N), ("dimensions", MAX_DIMENSIONS)):
            value = body.get(name)
            if value is not None and not (isinstance(value, int) and 1 <= value <= most):
                return f"{name} must be an integer from 1 to {most}"
        return None

    def _record(self, endpoint: str, body: dict[str, Any]) -> tuple[int, int | None]:
        with self._lock:
            self.calls[endpoint] += 1
            self.requests.append(body)
            failure = self._failures.pop(0) if self._failures else None
            return self.calls[endpoint], failure

    def chat_completion(self, body: dict[str, Any], number: int) -> dict[str, Any]:
        n = int(body.get("n") or 1)
        texts = [self.reply(body, number) for _ in range(n)]
        prompt = count_messages(body.get("messages") or [])
        completion = sum(count_text(t) for t in texts)
        return {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "system_fingerprint": "fp_fake",
            # the tier asked for, as OpenAI reports it (flex: billed at Batch API rates)
            **({"service_tier": body["service_tier"]} if body.get("service_tier") else {}),
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
                for i, text in enumerate(texts)
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                **(
                    {"prompt_tokens_details": {"cached_tokens": min(self.cached_tokens, prompt)}}
                    if self.cached_tokens
                    else {}
                ),
            },
        }

    def chat_chunks(self, body: dict[str, Any], number: int) -> list[dict[str, Any]]:
        """The SSE chunks of a streamed answer: role, one chunk per word, finish, usage."""
        full = self.chat_completion(body, number)
        fields = ("id", "created", "model", "system_fingerprint", "service_tier")
        base = {k: full[k] for k in fields if k in full}
        base["object"] = "chat.completion.chunk"
        chunks: list[dict[str, Any]] = []
        for choice in full["choices"]:
            i = choice["index"]
            chunks.append({**base, "choices": [_delta(i, {"role": "assistant", "content": ""})]})
            words = choice["message"]["content"].split(" ")
            for j, word in enumerate(words):
                piece = word if j == 0 else " " + word
                chunks.append({**base, "choices": [_delta(i, {"content": piece})]})
            chunks.append({**base, "choices": [_delta(i, {}, finish="stop")]})
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": full["usage"]})
        return chunks

    def text_completion(self, body: dict[str, Any], number: int) -> dict[str, Any]:
        """A ``text_completion`` answer (``POST /v1/completions``) echoing the prompt."""
        prompt = body.get("prompt")
        text = f"Reply {number}: {prompt if isinstance(prompt, str) else json.dumps(prompt)}"
        used_in, used_out = count_text(str(prompt)), count_text(text)
        return {
            "id": f"cmpl-fake-{number}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": used_in,
                "completion_tokens": used_out,
                "total_tokens": used_in + used_out,
            },
        }

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dims = int(body.get("dimensions") or 8)
        data = []
        for i, text in enumerate(texts):
            vector = fake_embedding(str(text), dims)
            if body.get("encoding_format") == "base64":
                encoded: Any = b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(count_text(str(t)) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", "fake-embedding"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


#: The largest ``n`` and ``dimensions`` the fake answers (OpenAI's ``n`` limit; its largest
#: embedding size).
MAX_N, MAX_DIMENSIONS = 128, 3072


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-stream (an abandoned stream) are normal here, not errors."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):
            super().handle_error(request, client_address)


def _delta(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def _handler_for(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class FakeOpenAIHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as separate writes: without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK stall every keep-alive response by ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def _send_json(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_error(
            self, status: int, message: str, headers: dict[str, str] | None = None
        ) -> None:
            error = {"message": message, "type": "fake_error", "param": None, "code": None}
            self._send_json(status, {"error": error}, headers)

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _send_sse(
            self, events: list[dict[str, Any]], error_after: int | None, *, done: bool = True
        ) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                self._write_events(events, error_after, done)
            except ConnectionError:
                with fake._lock:
                    fake.streams_abandoned += 1
                raise

        def _write_events(
            self, events: list[dict[str, Any]], error_after: int | None, done: bool
        ) -> None:
            for i, event in enumerate(events):
                if i and fake.chunk_delay:
                    time.sleep(fake.chunk_delay)
                if i == fake.stream_stall_after:
                    fake._stopped.wait(STALL_SECONDS)
                    self.close_connection = True
                    return
                if i == fake.stream_reset_after:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )  # linger 0: close() sends a RST, as a crashed or cut-off upstream does
                    self.connection.close()
                    self.close_connection = True
                    return
                if error_after is not None and i == error_after:
                    failure = {"error": {"message": "fake stream failure", "type": "fake_error"}}
                    self._write_chunk(f"data: {json.dumps(failure)}\n\n".encode())
                    break
                self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
            else:
                if done:
                    self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                fake._record("models", {})
                model = {"id": "fake", "object": "model", "created": 0, "owned_by": "fake"}
                self._send_json(200, {"object": "list", "data": [model]})
            else:
                self._send_error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send_error(400, "request body is not JSON")
                return
            path = self.path.split("?", 1)[0].rstrip("/")
            endpoint = {
                "/v1/chat/completions": "chat",
                "/v1/completions": "completions",
                "/v1/embeddings": "embeddings",
            }.get(path)
            if endpoint is None:
                self._send_error(404, f"no route {self.path}")
                return
            refused = fake.refusal(body) if isinstance(body, dict) else "not a JSON object"
            if refused is not None:
                self._send_error(400, refused)
                return
            number, failure = fake._record(endpoint, body)
            if fake.delay:
                time.sleep(fake.delay)
            if failure is not None:
                self._send_error(failure, f"fake failure {failure}", fake.failure_headers)
            elif endpoint == "completions":
                self._send_json(200, fake.text_completion(body, number))
            elif endpoint == "embeddings":
                self._send_json(200, fake.embeddings(body))
            elif body.get("stream"):
                chunks = fake.chat_chunks(body, number)
                if fake.stream_cut_after is not None:
                    chunks = chunks[: fake.stream_cut_after]
                self._send_sse(chunks, fake.stream_error_after, done=fake.stream_cut_after is None)
            else:
                self._send_json(200, fake.chat_completion(body, number))

    return FakeOpenAIHandler
