"""Any OpenAI-compatible HTTP upstream (OpenAI, vLLM, Ollama, llama.cpp's server, a fake).

Built on one pooled, keep-alive ``aiohttp.ClientSession`` per provider: on loopback it adds
about a third of the latency of httpx's async client (see FINDINGS.md, "Gateway overhead"), which
decides most of the gateway's own overhead. Upstream failures are raised as
:class:`~thrifty.errors.UpstreamError` carrying the status, headers (``Retry-After``) and body,
so retries and error mapping can act on them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from thrifty.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from thrifty.providers.base import Provider

DEFAULT_TIMEOUT = 600.0
SSE_DATA = b"data:"


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class OpenAICompatProvider(Provider):
    """Forwards OpenAI-shaped requests to ``{api_base}/chat/completions`` and friends.

    Args:
        api_base: the upstream's base URL including ``/v1`` (e.g. ``http://127.0.0.1:8000/v1``).
        api_key: sent as ``Authorization: Bearer``; None sends no key.
        model: the upstream's model name, replacing the request's (a gateway's ``model_name``
            is an alias); None forwards the request's model unchanged.
        timeout: seconds for a whole answer, or between two chunks of a stream.
        headers: extra headers for every request (e.g. ``OpenAI-Organization``).
        name: the name shown in logs, metrics and ``X-Thrifty-Route``.
        max_connections: size of the keep-alive connection pool.
    """

    def __init__(
        self,
        api_base: str,
        api_key: str | None = None,
        model: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        max_connections: int = 256,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.name = name or (model or api_base)
        self.max_connections = max_connections
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------ session
    def _client(self) -> aiohttp.ClientSession:
        """The pooled session, made on first use (it must belong to the running loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, keepalive_timeout=30, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                json_serialize=_dumps,
                auto_decompress=True,
            )
        return self._session

    def _payload(self, body: Mapping[str, Any]) -> bytes:
        if self.model is not None:
            body = {**body, "model": self.model}
        return orjson.dumps(body)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # ------------------------------------------------------------ calls
    async def _post_json(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        url = self.api_base + path
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self._client().post(
                url, data=self._payload(body), timeout=timeout
            ) as response:
                raw = await response.read()
                if response.status >= 400:
                    raise self._status_error(response, raw)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"{self.name}: no answer from {url} within {self.timeout:g}s", provider=self.name
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(
                f"{self.name}: cannot reach {url}: {exc}", provider=self.name
            ) from exc
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"{self.name}: upstream answered with invalid JSON",
                status=502,
                body=raw[:2000].decode(errors="replace"),
                provider=self.name,
            ) from exc
        if not isinstance(data, dict):
            raise UpstreamError(
                f"{self.name}: upstream answered with a non-object", status=502, provider=self.name
            )
        return data

    def _status_error(self, response: aiohttp.ClientResponse, raw: bytes) -> UpstreamError:
        body: Any
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw[:2000].decode(errors="replace")
        message = ""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = str(body["error"].get("message") or "")
        elif isinstance(body, str):
            message = body
        return UpstreamError(
            f"{self.name}: upstream status {response.status}: {message}".rstrip(": "),
            status=response.status,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=body,
            provider=self.name,
        )

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._post_json("/chat/completions", {**body, "stream": False})

    async def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._post_json("/completions", {**body, "stream": False})

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._post_json("/embeddings", body)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The upstream's SSE chunks as dicts; closing the iterator closes the connection."""
        async for chunk in self._stream_post("/chat/completions", {**body, "stream": True}):
            yield chunk

    async def _stream_post(
        self, path: str, body: Mapping[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """POST ``body`` and yield the JSON of each ``data:`` line of the SSE answer."""
        url = self.api_base + path
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=self.timeout
        )
        try:
            async with self._client().post(
                url, data=self._payload(body), timeout=timeout
            ) as response:
                if response.status >= 400:
                    raise self._status_error(response, await response.read())
                async for chunk in self._sse_chunks(response):
                    yield chunk
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"{self.name}: stream from {url} stalled for {self.timeout:g}s",
                provider=self.name,
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(
                f"{self.name}: stream from {url} failed: {exc}", provider=self.name
            ) from exc

    async def _sse_chunks(self, response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
        async for line in response.content:
            if not line.startswith(SSE_DATA):
                continue  # comments, event names, blank separators
            data = line[len(SSE_DATA) :].strip()
            if data == b"[DONE]":
                return
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(
                    f"{self.name}: invalid JSON in the stream", status=502, provider=self.name
                ) from exc
            if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                error = chunk["error"] if isinstance(chunk["error"], dict) else {}
                raise UpstreamError(
                    f"{self.name}: upstream failed mid-stream: {error.get('message', chunk)}",
                    status=502,
                    body=chunk,
                    provider=self.name,
                )
            yield chunk

    def __repr__(self) -> str:
        return f"OpenAICompatProvider({self.api_base!r}, model={self.model!r})"
