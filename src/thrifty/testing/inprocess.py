"""A FAKE upstream served in-process: :class:`FakeOpenAI`'s answers as a provider, no socket.

The gateway's tests drive the app through ``httpx.ASGITransport``; with this adapter its
upstream is in the same event loop too, so a test exercises the whole request path (stages,
cache, pool, retries, streams) without loopback HTTP on either side. It is a FAKE: it answers
with :class:`~thrifty.testing.fake_openai.FakeOpenAI`'s made-up text and honours the same test
knobs (``fail_next``, ``failure_headers``, ``delay``, ``chunk_delay``, ``stream_error_after``,
``stream_cut_after``, ``stream_stall_after``, ``stream_reset_after``), counting ``calls``,
``requests`` and ``streams_abandoned`` on that fake.
Its errors are the ones :class:`~thrifty.providers.openai_compat.OpenAICompatProvider` raises
for the same HTTP answers, so error handling is tested as it runs against a real upstream.

    connect = InProcessOpenAI.connector()  # every running fake; create_app(..., connect=connect)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from thrifty.errors import UpstreamConnectionError, UpstreamError, UpstreamTimeoutError
from thrifty.providers.base import Provider
from thrifty.server.config import DeploymentParams, provider_of
from thrifty.testing.fake_openai import RUNNING, STALL_SECONDS, FakeOpenAI


class InProcessOpenAI(Provider):
    """``fake``'s answers for one deployment (FAKE).

    Args:
        fake: the fake whose answers, knobs and counters are used.
        model: the upstream model name replacing the request's (as the HTTP provider does).
        name: the name shown in logs, metrics and ``X-Thrifty-Route``.
        timeout: seconds for a whole answer (the fake's ``delay`` counts), as over HTTP.
    """

    def __init__(
        self, fake: FakeOpenAI, model: str | None, name: str, *, timeout: float = 600.0
    ) -> None:
        self.fake = fake
        self.api_base = fake.base_url  # what spans name as the server, as over HTTP
        self.model = model
        self.name = name
        self.timeout = timeout

    @classmethod
    def connector(cls, *fakes: FakeOpenAI) -> Any:
        """A ``connect`` for :func:`thrifty.server.app.create_app`: deployments whose
        ``api_base`` is one of ``fakes`` (default: every running fake) get an in-process
        provider; others are built as configured."""
        chosen = {fake.base_url.rstrip("/"): fake for fake in fakes} if fakes else None

        def connect(params: DeploymentParams, timeout: float) -> Provider | None:
            base = (params.api_base or "").rstrip("/")
            fake = (chosen if chosen is not None else RUNNING).get(base)
            if fake is None or params.kind != "openai":
                return None
            model = provider_of(params.model)[1]
            return cls(fake, model, params.model, timeout=params.timeout or timeout)

        return connect

    def _payload(self, body: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        """The body as the fake would decode it from the wire (a copy, model replaced)."""
        if self.model is not None:
            extra["model"] = self.model
        copied: dict[str, Any] = orjson.loads(orjson.dumps({**body, **extra}))
        return copied

    def _error(self, status: int) -> UpstreamError:
        message = f"fake failure {status}"
        body = {"error": {"message": message, "type": "fake_error", "param": None, "code": None}}
        return UpstreamError(
            f"{self.name}: upstream status {status}: {message}",
            status=status,
            headers={k.lower(): v for k, v in self.fake.failure_headers.items()},
            body=body,
            provider=self.name,
        )

    async def _answer(self, endpoint: str, body: dict[str, Any]) -> int:
        """Record the call like the HTTP fake; raise its scheduled failure; return the number."""
        refused = self.fake.refusal(body)
        if refused is not None:
            raise UpstreamError(f"{self.name}: upstream status 400: {refused}", status=400,
                                body={"error": {"message": refused, "type": "invalid_request_error",
                                                "param": None, "code": None}},
                                provider=self.name)  # fmt: skip
        number, failure = self.fake._record(endpoint, body)
        if self.fake.delay:
            if self.fake.delay >= self.timeout:
                await asyncio.sleep(self.timeout)
                raise UpstreamTimeoutError(
                    f"{self.name}: no answer within {self.timeout:g}s", provider=self.name
                )
            await asyncio.sleep(self.fake.delay)
        if failure is not None:
            raise self._error(failure)
        return number

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        request = self._payload(body, stream=False)
        return self.fake.chat_completion(request, await self._answer("chat", request))

    async def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        request = self._payload(body, stream=False)
        return self.fake.text_completion(request, await self._answer("completions", request))

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        request = self._payload(body)
        await self._answer("embeddings", request)
        return self.fake.embeddings(request)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The fake's chunks; an abandoned stream (closed before its end) is counted."""
        fake = self.fake
        request = self._payload(body, stream=True)
        chunks = fake.chat_chunks(request, await self._answer("chat", request))
        if fake.stream_cut_after is not None:
            chunks = chunks[: fake.stream_cut_after]
        finished = False
        try:
            for i, chunk in enumerate(chunks):
                if i and fake.chunk_delay:
                    await asyncio.sleep(fake.chunk_delay)
                if i == fake.stream_stall_after:
                    await asyncio.sleep(STALL_SECONDS)  # until the client gives up (cancels)
                    return
                if i == fake.stream_reset_after:
                    finished = True  # failed, not abandoned
                    raise UpstreamConnectionError(
                        f"{self.name}: connection reset mid-stream", provider=self.name
                    )
                if fake.stream_error_after is not None and i == fake.stream_error_after:
                    finished = True  # failed, not abandoned
                    raise UpstreamError(
                        f"{self.name}: upstream failed mid-stream: fake stream failure",
                        status=502,
                        body={"error": {"message": "fake stream failure", "type": "fake_error"}},
                        provider=self.name,
                    )
                yield chunk
            finished = True
        finally:
            if not finished:
                with fake._lock:
                    fake.streams_abandoned += 1
