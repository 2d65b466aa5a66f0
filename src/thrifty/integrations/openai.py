"""``thrifty.wrap``: an OpenAI SDK client whose chat completions and embeddings are cached.

The wrapped client is a thin proxy: ``client.chat.completions.create`` and
``client.embeddings.create`` go through the cache and return the SDK's own types
(``ChatCompletion``, ``CreateEmbeddingResponse``, iterables of ``ChatCompletionChunk``);
everything else passes through to the real client unchanged.

- Key: the canonical request (``Cache.key``), with ``extra_body`` fields included and ``stream``
  excluded, so a streamed answer serves a plain request and the other way round.
- Policy: chat requests are cached only at ``temperature=0``, unless the caller opts in with
  ``wrap(..., cache_temperature=True)`` (or per call, see below); embeddings always.
- Per call: ``extra_body={"thrifty": {"cache": "default|no-cache|no-store|refresh",
  "ttl": seconds, "namespace": name, "cache_temperature": bool}}`` (removed before sending).
  ``no-cache`` neither reads nor writes, ``no-store`` reads but does not write, ``refresh``
  does not read but overwrites.
- Each response carries how it was served: ``cache_status(response)`` is ``"hit"``,
  ``"semantic_hit"``, ``"coalesced"``, ``"miss"``, ``"refresh"`` or ``"bypass"`` (also in
  ``response._thrifty``).
- A failing cache backend never fails a call: the request goes upstream (fail-open).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import openai
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from thrifty.accounting.tokens import count_messages, count_text, usage_of
from thrifty.cache import Cache
from thrifty.errors import ConfigError
from thrifty.integrations._openai_streams import (
    AsyncRecordingStream,
    AsyncReplayStream,
    RecordingStream,
    ReplayStream,
)
from thrifty.integrations._streams import (
    chunks_from_completion,
    completion_from_chunks,
    replay_chunks,
    stream_finished,
)

log = logging.getLogger("thrifty.openai")

CACHE_MODES = frozenset({"default", "no-cache", "no-store", "refresh"})
_UNSET = (openai.Omit, openai.NotGiven)


def cache_status(response: Any) -> str | None:
    """How a response of a wrapped client was served ("hit", "miss", …), None if not ours."""
    info = getattr(response, "_thrifty", None)
    return info.get("cache") if isinstance(info, dict) else None


def _mark(obj: Any, status: str, key: str | None) -> Any:
    with contextlib.suppress(AttributeError, TypeError):  # an object taking no attributes
        obj._thrifty = {"cache": status, "key": key}
    return obj


# ------------------------------------------------------------------ requests
@dataclass(frozen=True, slots=True)
class WrapPolicy:
    """What ``wrap()`` was told: the cache and its defaults."""

    cache: Cache
    namespace: str | None = None
    cache_temperature: bool = False
    ttl: float | None = None


@dataclass(slots=True)
class CachedCall:
    """One call as the cache sees it: what goes upstream, its key and how to treat it."""

    upstream: dict[str, Any]
    request: dict[str, Any]
    key: str | None
    mode: str
    namespace: str | None
    ttl: float | None
    stream: bool
    kind: str

    @classmethod
    def build(cls, kwargs: Mapping[str, Any], policy: WrapPolicy, kind: str) -> CachedCall:
        upstream = {k: _listed(v) for k, v in kwargs.items() if not isinstance(v, _UNSET)}
        extra = dict(upstream.get("extra_body") or {})
        options = extra.pop("thrifty", None) or {}
        if not isinstance(options, Mapping):
            raise ConfigError('extra_body["thrifty"] must be a mapping of cache options')
        if "extra_body" in upstream:
            upstream["extra_body"] = extra or None
        mode = options.get("cache", "default")
        if mode not in CACHE_MODES:
            raise ConfigError(f"thrifty cache mode must be one of {sorted(CACHE_MODES)}")
        # Fields sent through extra_body reach the model, so they belong in the key.
        request = {**{k: v for k, v in upstream.items() if k != "extra_body"}, **extra}
        namespace = options.get("namespace") or policy.namespace
        ttl = options.get("ttl", policy.ttl)
        if ttl is not None and (not isinstance(ttl, int | float) or ttl <= 0):
            raise ConfigError("thrifty ttl must be a positive number of seconds")
        opt_in = bool(options.get("cache_temperature", policy.cache_temperature))
        cacheable = mode != "no-cache" and (kind != "chat" or opt_in or _deterministic(request))
        key = None
        if cacheable:
            try:
                key = policy.cache.key(request, kind=kind, namespace=namespace)
            except (TypeError, ValueError) as exc:  # fail-open: an unkeyable request goes upstream
                log.warning("thrifty cannot key this request, not caching it: %s", exc)
        stream = bool(upstream.get("stream"))
        return cls(upstream, request, key, mode, namespace, ttl, stream, kind)

    @property
    def where(self) -> dict[str, Any]:
        """Namespace, request and kind: what the cache needs for semantic lookup and indexing."""
        return {"namespace": self.namespace, "request": self.request, "kind": self.kind}

    @property
    def include_usage(self) -> bool:
        return bool((self.request.get("stream_options") or {}).get("include_usage"))

    def info(self, status: str) -> dict[str, Any]:
        return {"cache": status, "key": self.key}


def _listed(value: Any) -> Any:
    """A one-shot iterable (the SDK takes ``Iterable`` messages) as a list, so keying it does
    not use it up before it is sent."""
    if isinstance(value, Iterator):
        return list(value)
    return value


def _deterministic(request: Mapping[str, Any]) -> bool:
    """True at an explicit ``temperature=0``: the OpenAI default temperature is 1."""
    temperature = request.get("temperature")
    # A non-number is the upstream's to reject (400), never ours to cache.
    return isinstance(temperature, int | float) and temperature == 0


# ------------------------------------------------------------ stored values
def _describe_chat(request: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """Entry fields for a chat answer: tokens from usage, else counted with tiktoken."""
    usage = usage_of(body)
    if usage is None:
        texts = [(c.get("message") or {}).get("content") or "" for c in body.get("choices", [])]
        usage = (count_messages(request.get("messages") or []), sum(map(count_text, texts)))
    return {"model": request.get("model"), "tokens_in": usage[0], "tokens_out": usage[1]}


def _describe_embeddings(request: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    usage = usage_of(body)
    if usage is None:
        inputs = request.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        usage = (sum(count_text(t) for t in texts if isinstance(t, str)), 0)
    return {"model": request.get("model"), "tokens_in": usage[0], "tokens_out": 0}


def _describe_value(request: Mapping[str, Any], value: Mapping[str, Any]) -> dict[str, Any]:
    if "embeddings" in value:
        return _describe_embeddings(request, value["embeddings"])
    return _describe_chat(request, _completion_body(value))


def _completion_body(value: Mapping[str, Any]) -> dict[str, Any]:
    if "completion" in value:
        return value["completion"]
    return completion_from_chunks(value["chunks"])


def _dump(obj: Any) -> dict[str, Any]:
    return obj.model_dump(mode="json", exclude_unset=True)


def _as_completion(value: Mapping[str, Any], call: CachedCall, status: str) -> ChatCompletion:
    return _mark(ChatCompletion.model_validate(_completion_body(value)), status, call.key)


def _as_chunks(value: Mapping[str, Any], call: CachedCall) -> list[ChatCompletionChunk]:
    if "chunks" in value:
        raw = replay_chunks(value["chunks"], include_usage=call.include_usage)
    else:
        raw = chunks_from_completion(value["completion"], include_usage=call.include_usage)
    return [ChatCompletionChunk.model_validate(c) for c in raw]


def _as_embeddings(value: Mapping[str, Any], call: CachedCall, status: str) -> Any:
    return _mark(CreateEmbeddingResponse.model_validate(value["embeddings"]), status, call.key)


def _rebuild_failed(cache: Cache, call: CachedCall, exc: Exception) -> None:
    log.warning("thrifty dropped an unreadable cached answer %s: %s", (call.key or "")[:16], exc)
    try:
        cache.delete(call.key or "")
    except Exception as delete_exc:  # fail-open
        log.warning("thrifty could not delete it: %s", delete_exc)


# ------------------------------------------------------------------ proxies
class _Proxy:
    """Forwards every attribute it does not define to the wrapped SDK object."""

    def __init__(self, inner: Any, policy: WrapPolicy) -> None:
        self._inner = inner
        self._policy = policy

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"<thrifty cached {self._inner!r}>"


class CachedCompletions(_Proxy):
    """``client.chat.completions`` of a wrapped ``openai.OpenAI``."""

    def create(self, **kwargs: Any) -> Any:
        call = CachedCall.build(kwargs, self._policy, "chat")
        cache = self._policy.cache
        if call.key is None:
            return _mark(self._inner.create(**call.upstream), "bypass", None)
        if call.stream:
            return self._stream(call)
        if call.mode == "refresh":
            response = self._inner.create(**call.upstream)
            value = {"completion": _dump(response)}
            cache.set(
                call.key,
                value,
                **call.where,
                ttl=call.ttl,
                **_describe_value(call.request, value),
            )
            return _mark(response, "refresh", call.key)
        fresh: list[Any] = []

        def compute() -> dict[str, Any]:
            fresh.append(self._inner.create(**call.upstream))
            return {"completion": _dump(fresh[0])}

        value, status = cache.get_or_compute(
            call.key,
            compute,
            **call.where,
            ttl=call.ttl,
            describe=lambda v: _describe_value(call.request, v),
            store=call.mode != "no-store",
        )
        if fresh:
            return _mark(fresh[0], status, call.key)
        try:
            return _as_completion(value, call, status)
        except Exception as exc:
            _rebuild_failed(cache, call, exc)
            return _mark(self._inner.create(**call.upstream), "miss", call.key)

    def _stream(self, call: CachedCall) -> Any:
        cache = self._policy.cache
        if call.mode in ("default", "no-store"):
            hit = cache.lookup(call.key or "", **call.where)
            if hit is not None:
                try:
                    return ReplayStream(_as_chunks(hit.value, call), call.info(hit.kind))
                except Exception as exc:
                    _rebuild_failed(cache, call, exc)
        started = time.perf_counter()
        status = "refresh" if call.mode == "refresh" else "miss"
        stream = self._inner.create(**call.upstream)
        if call.mode == "no-store":
            return _mark(stream, status, call.key)

        def store(chunks: list[dict[str, Any]]) -> None:
            if not stream_finished(chunks):
                log.warning("thrifty did not store a stream that ended without a finish reason")
                return
            value = {"chunks": chunks}
            cache.set(
                call.key or "",
                value,
                **call.where,
                ttl=call.ttl,
                latency_ms=(time.perf_counter() - started) * 1000,
                **_describe_value(call.request, value),
            )

        return RecordingStream(stream, store, call.info(status))


class AsyncCachedCompletions(_Proxy):
    """``client.chat.completions`` of a wrapped ``openai.AsyncOpenAI``."""

    async def create(self, **kwargs: Any) -> Any:
        call = CachedCall.build(kwargs, self._policy, "chat")
        cache = self._policy.cache
        if call.key is None:
            return _mark(await self._inner.create(**call.upstream), "bypass", None)
        if call.stream:
            return await self._stream(call)
        if call.mode == "refresh":
            response = await self._inner.create(**call.upstream)
            value = {"completion": _dump(response)}
            await cache.aset(
                call.key,
                value,
                **call.where,
                ttl=call.ttl,
                **_describe_value(call.request, value),
            )
            return _mark(response, "refresh", call.key)
        fresh: list[Any] = []

        async def compute() -> dict[str, Any]:
            fresh.append(await self._inner.create(**call.upstream))
            return {"completion": _dump(fresh[0])}

        value, status = await cache.aget_or_compute(
            call.key,
            compute,
            **call.where,
            ttl=call.ttl,
            describe=lambda v: _describe_value(call.request, v),
            store=call.mode != "no-store",
        )
        if fresh:
            return _mark(fresh[0], status, call.key)
        try:
            return _as_completion(value, call, status)
        except Exception as exc:
            _rebuild_failed(cache, call, exc)
            return _mark(await self._inner.create(**call.upstream), "miss", call.key)

    async def _stream(self, call: CachedCall) -> Any:
        cache = self._policy.cache
        if call.mode in ("default", "no-store"):
            hit = await cache.alookup(call.key or "", **call.where)
            if hit is not None:
                try:
                    return AsyncReplayStream(_as_chunks(hit.value, call), call.info(hit.kind))
                except Exception as exc:
                    _rebuild_failed(cache, call, exc)
        started = time.perf_counter()
        status = "refresh" if call.mode == "refresh" else "miss"
        stream = await self._inner.create(**call.upstream)
        if call.mode == "no-store":
            return _mark(stream, status, call.key)

        async def store(chunks: list[dict[str, Any]]) -> None:
            if not stream_finished(chunks):
                log.warning("thrifty did not store a stream that ended without a finish reason")
                return
            value = {"chunks": chunks}
            await cache.aset(
                call.key or "",
                value,
                **call.where,
                ttl=call.ttl,
                latency_ms=(time.perf_counter() - started) * 1000,
                **_describe_value(call.request, value),
            )

        return AsyncRecordingStream(stream, store, call.info(status))


class CachedEmbeddings(_Proxy):
    """``client.embeddings`` of a wrapped ``openai.OpenAI``."""

    def create(self, **kwargs: Any) -> Any:
        call = CachedCall.build(kwargs, self._policy, "embeddings")
        if call.key is None:
            return _mark(self._inner.create(**call.upstream), "bypass", None)
        fresh: list[Any] = []

        def compute() -> dict[str, Any]:
            fresh.append(self._inner.create(**call.upstream))
            return {"embeddings": _dump(fresh[0])}

        value, status = self._policy.cache.get_or_compute(
            call.key,
            compute,
            **call.where,
            ttl=call.ttl,
            describe=lambda v: _describe_value(call.request, v),
            store=call.mode != "no-store",
        )
        if fresh:
            return _mark(fresh[0], status, call.key)
        try:
            return _as_embeddings(value, call, status)
        except Exception as exc:
            _rebuild_failed(self._policy.cache, call, exc)
            return _mark(self._inner.create(**call.upstream), "miss", call.key)


class AsyncCachedEmbeddings(_Proxy):
    """``client.embeddings`` of a wrapped ``openai.AsyncOpenAI``."""

    async def create(self, **kwargs: Any) -> Any:
        call = CachedCall.build(kwargs, self._policy, "embeddings")
        if call.key is None:
            return _mark(await self._inner.create(**call.upstream), "bypass", None)
        fresh: list[Any] = []

        async def compute() -> dict[str, Any]:
            fresh.append(await self._inner.create(**call.upstream))
            return {"embeddings": _dump(fresh[0])}

        value, status = await self._policy.cache.aget_or_compute(
            call.key,
            compute,
            **call.where,
            ttl=call.ttl,
            describe=lambda v: _describe_value(call.request, v),
            store=call.mode != "no-store",
        )
        if fresh:
            return _mark(fresh[0], status, call.key)
        try:
            return _as_embeddings(value, call, status)
        except Exception as exc:
            _rebuild_failed(self._policy.cache, call, exc)
            return _mark(await self._inner.create(**call.upstream), "miss", call.key)


class CachedChat(_Proxy):
    """``client.chat`` with cached ``completions``."""

    def __init__(self, inner: Any, policy: WrapPolicy, completions: type[_Proxy]) -> None:
        super().__init__(inner, policy)
        self.completions = completions(inner.completions, policy)


class CachedClient(_Proxy):
    """A wrapped ``openai.OpenAI`` / ``openai.AsyncOpenAI``; see :func:`wrap`."""

    def __init__(self, inner: Any, policy: WrapPolicy) -> None:
        super().__init__(inner, policy)
        is_async = isinstance(inner, openai.AsyncOpenAI)
        completions = AsyncCachedCompletions if is_async else CachedCompletions
        embeddings = AsyncCachedEmbeddings if is_async else CachedEmbeddings
        self.chat = CachedChat(inner.chat, policy, completions)
        self.embeddings = embeddings(inner.embeddings, policy)
        self.thrifty_cache = policy.cache

    def with_options(self, **options: Any) -> CachedClient:
        """The SDK's ``with_options``, still cached."""
        return CachedClient(self._inner.with_options(**options), self._policy)

    copy = with_options


def wrap(
    client: Any,
    cache: Cache | None = None,
    *,
    namespace: str | None = None,
    cache_temperature: bool = False,
    ttl: float | None = None,
) -> Any:
    """Return ``client`` with cached, accounted chat completions and embeddings.

    Args:
        client: an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` (or a subclass such as Azure's).
        cache: the :class:`thrifty.Cache` to use (default: ``thrifty.Cache()``, SQLite).
        namespace: namespace (tenant) for this client's entries; the cache's default otherwise.
        cache_temperature: also cache chat requests sampled at ``temperature > 0`` (off by
            default: a caller asking for randomness gets a fresh sample).
        ttl: lifetime of this client's entries in seconds (the cache's default otherwise).

    Raises:
        ConfigError: ``client`` is not an OpenAI SDK client, or ``cache`` is not a Cache.
    """
    if not isinstance(client, openai.OpenAI | openai.AsyncOpenAI):
        raise ConfigError(
            "wrap() takes an openai.OpenAI or openai.AsyncOpenAI client, "
            f"got {type(client).__name__}"
        )
    if cache is None:
        cache = Cache()
    if not isinstance(cache, Cache):
        raise ConfigError(f"wrap() needs cache=thrifty.Cache(...), got {type(cache).__name__}")
    return CachedClient(client, WrapPolicy(cache, namespace, cache_temperature, ttl))
