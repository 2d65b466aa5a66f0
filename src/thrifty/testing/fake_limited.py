"""RateLimitedFakeOpenAI: a FAKE OpenAI-compatible upstream with latency and a provider-style
rate limit, for batch tests and benchmarks.

It answers ``POST /v1/chat/completions`` after ``latency`` seconds with made-up text (it measures
thrifty's scheduling, never a model). With ``rpm`` set it admits at most ``rpm / 60`` requests in
each wall-clock second, as providers quantize their limits; a request over the limit is refused at
once with 429, ``Retry-After`` (whole seconds, rounded up) and ``retry-after-ms`` (exact), and
does not count against the window. It counts calls per prompt (the last message's content), so a
test can assert that each line of a job reached it exactly once: ``calls_by_prompt`` counts
arrivals, ``answered_by_prompt`` answers completed for a client still connected (a client that
disconnects while its request is being answered cancels it, as providers stop generating).

Runs on aiohttp in a background thread (``with RateLimitedFakeOpenAI(...) as fake``), or as its
own process: ``python -m thrifty.testing.fake_limited --port 8199 --latency 0.2 --rpm 600``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import threading
import time
from collections import Counter
from typing import Any

from thrifty.accounting.tokens import count_messages, count_text


def _prompt_of(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content", "") if isinstance(messages[-1], dict) else ""
    return content if isinstance(content, str) else json.dumps(content)


class RateLimitedFakeOpenAI:
    """A fake upstream with latency, a per-second request quota and scripted failures.

    Args:
        latency: seconds before each admitted request is answered.
        rpm: requests per minute (None: unlimited); the quota is ``rpm / 60`` per second.
        port: 0 picks a free port.

    Attributes:
        calls_by_prompt: admitted calls per prompt (arrivals).
        answered_by_prompt: answers completed per prompt (what a batch line paid for).
        admitted: answered requests (successes and scripted failures).
        refused: requests refused with 429 by the rate limit.
        admit_times, refuse_times: wall-clock arrival times of admitted and refused requests.
    """

    def __init__(self, *, latency: float = 0.0, rpm: float | None = None, port: int = 0):
        if rpm is not None and rpm / 60 < 1:
            raise ValueError("rpm must allow at least one request per second (rpm >= 60)")
        self.latency = latency
        self.rpm = rpm
        self.port = port
        self.calls_by_prompt: Counter[str] = Counter()
        self.answered_by_prompt: Counter[str] = Counter()
        self.admitted = 0
        self.refused = 0
        self.admit_times: list[float] = []
        self.refuse_times: list[float] = []
        self._failures: dict[str, list[int]] = {}
        self._window = -1
        self._in_window = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._runner: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def fail(self, prompt: str, statuses: list[int]) -> None:
        """Answer the next calls with this prompt with these error statuses, in order."""
        with self._lock:
            self._failures.setdefault(prompt, []).extend(statuses)

    def set_rpm(self, rpm: float | None) -> None:
        with self._lock:
            self.rpm = rpm

    # ------------------------------------------------------------ limit
    def _admit(self, now: float) -> float | None:
        """None when admitted, else the seconds until the next window opens."""
        with self._lock:
            if self.rpm is None:
                return None
            window = math.floor(now)
            if window != self._window:
                self._window, self._in_window = window, 0
            if self._in_window >= int(self.rpm // 60):
                return window + 1 - now
            self._in_window += 1
            return None

    # ------------------------------------------------------------ server
    async def _chat(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.json()
        now = time.time()
        wait = self._admit(now)
        if wait is not None:
            with self._lock:
                self.refused += 1
                self.refuse_times.append(now)
            error = {"message": "Rate limit reached (fake)", "type": "requests", "code": None}
            headers = {
                "Retry-After": str(math.ceil(wait)),
                "retry-after-ms": str(math.ceil(wait * 1000)),
            }
            return web.json_response({"error": error}, status=429, headers=headers)
        prompt = _prompt_of(body)
        with self._lock:
            self.admitted += 1
            self.admit_times.append(now)
            self.calls_by_prompt[prompt] += 1
            number = self.admitted
            queued = self._failures.get(prompt)
            failure = queued.pop(0) if queued else None
        if self.latency:
            await asyncio.sleep(self.latency)
        if failure is not None:
            error = {"message": f"fake failure {failure}", "type": "fake_error", "code": None}
            response = web.json_response({"error": error}, status=failure)
        else:
            response = web.json_response(self._completion(body, prompt, number, now))
        # Counted once the answer is handed to a connection still open: "the provider delivered
        # it" (an answer written after the client died is not).
        await response.prepare(request)
        await response.write_eof()
        transport = request.transport
        if transport is not None and not transport.is_closing():
            with self._lock:
                self.answered_by_prompt[prompt] += 1
        return response

    def _completion(self, body: dict[str, Any], prompt: str, number: int, now: float) -> dict:
        text = f"Reply {number}: {prompt}"
        prompt_tokens = count_messages(body.get("messages") or [])
        completion_tokens = count_text(text)
        return {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": int(now),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    async def _stats(self, _request: Any) -> Any:
        from aiohttp import web

        with self._lock:
            data = {
                "admitted": self.admitted,
                "refused": self.refused,
                "admit_times": list(self.admit_times),
                "refuse_times": list(self.refuse_times),
                "calls_by_prompt": dict(self.calls_by_prompt),
                "answered_by_prompt": dict(self.answered_by_prompt),
            }
        return web.json_response(data)

    async def _serve(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> RateLimitedFakeOpenAI:
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
            self._ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-limited-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RateLimitedFakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=8199, help="0: any free port")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rpm", type=float, default=None)
    args = parser.parse_args()
    fake = RateLimitedFakeOpenAI(latency=args.latency, rpm=args.rpm, port=args.port).start()
    print(f"fake upstream on {fake.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
