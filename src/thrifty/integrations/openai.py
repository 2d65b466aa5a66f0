"""``thrifty.wrap``: an OpenAI SDK client whose chat completions and embeddings are cached.

The wrapped client is a thin proxy: ``client.chat.completions.create`` and
``client.embeddings.create`` go through the cache and return the SDK's own types
(``ChatCompletion``, ``CreateEmbeddingResponse``, iterables of ``ChatCompletionChunk``);
everything else passes through to the real client unchanged.

- Key: the canonical request (``Cache.key``), with ``extra_body`` fields included and ``stream``
  excluded, so a streamed answer serves a plain request and the other way round.
- Stored: the response body (a streamed answer as the completion it assembles into), the one
  shape of :mod:`thrifty.answer`, so the gateway and batch jobs share these entries.
- Policy: :class:`thrifty.policy.CachePolicy`, as in the gateway: a chat request that leaves
  ``temperature`` out or sets it to 0 is cached; ``temperature > 0`` only when the caller opts
  in with ``wrap(..., cache_temperature=True)`` (or per call); embeddings always.
- Per call: ``extra_body={"thrifty": {"cache": "default|no-cache|no-store|refresh",
  "ttl": seconds, "namespace": name, "cache_temperature": bool}}`` (removed before sending).
  ``no-cache`` neither reads nor writes, ``no-store`` reads but does not write, ``refresh``
  does not read but overwrites.
- Each response carries how it was served: ``cache_status(response)`` is ``"hit"``,
  ``"semantic_hit"``, ``"coalesced"``, ``"miss"``, ``"refresh"`` or ``"bypass"`` (also in
  ``response._thrifty``).
- A failing cache backend never fails a call: the request goes upstream (fail-open).

Each ``create`` is written once, as a flow (:mod:`thrifty.integrations._flow`), and run by the
sync proxies with ``run_sync`` and by the async ones with ``run_async``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import openai
import pydantic
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from thrifty.accounting.tokens import count_messages, count_text, usage_of
from thrifty.answer import Endpoint, read_answer, stored_answer, stored_stream
from thrifty.cache import Cache
from thrifty.errors import ConfigError
from thrifty.integrations._flow import Flow, Step, call, run_async, run_sync
from thrifty.integrations._openai_streams import (
    AsyncRecordingStream,
    AsyncReplayStream,
    OnComplete,
    RecordingStream,
    ReplayStream,
)
from thrifty.integrations._streams import chunks_from_completion, stream_finished
from thrifty.policy import CachePolicy

log = logging.getLogger("thrifty.openai")

_UNSET = (openai.Omit, openai.NotGiven)
#: The SDK type a stored answer is served as, per endpoint.
RESPONSE_TYPE: Mapping[str, type[pydantic.BaseModel]] = {
    Endpoint.CHAT: ChatCompletion,
    Endpoint.EMBEDDINGS: CreateEmbeddingResponse,
}


def cache_status(response: Any) -> str | None:
    """How a response of a wrapped client was served ("hit", "miss", …), None if not ours."""
    info = getattr(response, "_thrifty", None)
    return info.get("cache") if isinstance(info, dict) else None


def _mark(obj: Any, status: str, key: str | None) -> Any:
    try:  # (not contextlib.suppress: building it costs more than the assignment, on every hit)
        obj._thrifty = {"cache": status, "key": key}
    except (AttributeError, TypeError):  # an object taking no attributes is served unmarked
        log.debug("thrifty cannot mark a %s with its cache status", type(obj).__name__)
    return obj


# ------------------------------------------------------------------ requests
@dataclass(frozen=True, slots=True)
class Wrapped:
    """What ``wrap()`` was told: the cache and the policy its calls start from."""

    cache: Cache
    policy: CachePolicy


@dataclass(slots=True)
class CachedCall:
    """One call as the cache sees it: what goes upstream, its key and its policy."""

    upstream: dict[str, Any]
    request: dict[str, Any]
    key: str | None
    policy: CachePolicy
    endpoint: Endpoint

    @classmethod
    def build(cls, kwargs: Mapping[str, Any], wrapped: Wrapped, endpoint: Endpoint) -> CachedCall:
        upstream = _sendable(kwargs)
        policy = wrapped.policy
        request = upstream  # the SDK does not change its arguments: one dict serves both
        if "extra_body" in upstream:
            extra = dict(upstream["extra_body"] or {})
            options = extra.pop("thrifty", None) or {}
            if not isinstance(options, Mapping):
                raise ConfigError('extra_body["thrifty"] must be a mapping of cache options')
            upstream["extra_body"] = extra or None
            # Fields sent through extra_body reach the model, so they belong in the key.
            request = {**{k: v for k, v in upstream.items() if k != "extra_body"}, **extra}
            policy = policy.with_options(options)
        if endpoint is Endpoint.CHAT:  # embeddings are not sampled
            policy = policy.for_temperature(request.get("temperature"))
        key = None
        if not policy.bypass:
            try:
                key = wrapped.cache.key(request, kind=endpoint, namespace=policy.namespace)
            except (TypeError, ValueError) as exc:  # fail-open: an unkeyable request goes upstream
                log.warning("thrifty cannot key this request, not caching it: %s", exc)
        return cls(upstream, request, key, policy, endpoint)

    @property
    def where(self) -> dict[str, Any]:
        """Namespace, request and kind: what the cache needs for semantic lookup and indexing."""
        return {"namespace": self.policy.namespace, "request": self.request, "kind": self.endpoint}

    def describe(self, value: Mapping[str, Any]) -> dict[str, Any]:
        """Model and tokens of an answer to this call (what a later hit saves)."""
        return _describe(self, value)

    def store_fields(self, value: Mapping[str, Any]) -> dict[str, Any]:
        """Where and how long to store ``value``, and the tokens it cost (for later savings)."""
        return {**self.where, "ttl": self.policy.ttl, **_describe(self, value)}

    def info(self, status: str) -> dict[str, Any]:
        return {"cache": status, "key": self.key}


#: Argument types sent as they are, checked by exact type first: an ABC ``isinstance`` per
#: argument showed up on the hit path.
_PLAIN = frozenset({str, int, float, bool, list, dict, tuple, type(None)})


def _sendable(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments to send: the SDK's omitted markers dropped, and a one-shot iterable (the
    SDK takes ``Iterable`` messages) listed, so keying it does not use it up before it is sent.
    """
    out: dict[str, Any] = {}
    for name, value in kwargs.items():
        if type(value) in _PLAIN:
            out[name] = value
        elif isinstance(value, Iterator):
            out[name] = list(value)
        elif not isinstance(value, _UNSET):
            out[name] = value
    return out


def _describe(call: CachedCall, body: Mapping[str, Any]) -> dict[str, Any]:
    """Entry fields for an answer: tokens from its usage, else counted with tiktoken."""
    request = call.request
    usage = usage_of(body)
    if usage is None and call.endpoint is Endpoint.EMBEDDINGS:
        inputs = request.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        usage = (sum(count_text(t) for t in texts if isinstance(t, str)), 0)
    elif usage is None:
        texts = [(c.get("message") or {}).get("content") or "" for c in body.get("choices", [])]
        usage = (count_messages(request.get("messages") or []), sum(map(count_text, texts)))
    return {"model": request.get("model"), "tokens_in": usage[0], "tokens_out": usage[1]}


def _served(endpoint: Endpoint, value: Any) -> pydantic.BaseModel | None:
    """A stored answer as the SDK's response type, or None when it has the wrong shape.

    The SDK type validates the current shape itself (its ``object`` field is a literal), so
    :func:`~thrifty.answer.read_answer` runs only for what it rejects: an old wrapped entry.
    """
    model = RESPONSE_TYPE[endpoint]
    try:
        return model.model_validate(value)
    except pydantic.ValidationError:
        body = read_answer(endpoint, value)
    try:
        return None if body is None or body is value else model.model_validate(body)
    except pydantic.ValidationError as exc:
        log.warning("thrifty cannot serve a cached %s answer: %s", endpoint, exc)
        return None


def _dump(obj: Any) -> dict[str, Any]:
    return obj.model_dump(mode="json", exclude_unset=True)


# ------------------------------------------------------------------ flows
class _Faces:
    """The stream classes of one face (sync or async): the only thing a flow cannot share."""

    def __init__(self, recording: type[Any], replay: type[Any]) -> None:
        self.recording = recording
        self.replay = replay


SYNC_FACE = _Faces(RecordingStream, ReplayStream)
ASYNC_FACE = _Faces(AsyncRecordingStream, AsyncReplayStream)


class _Proxy:
    """Forwards every attribute it does not define to the wrapped SDK object."""

    def __init__(self, inner: Any, wrapped: Wrapped) -> None:
        self._inner = inner
        self._wrapped = wrapped

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"<thrifty cached {self._inner!r}>"


class _CachedCreate(_Proxy):
    """``create`` of one endpoint, written once as a flow."""

    endpoint: Endpoint

    def _create(self, kwargs: Mapping[str, Any], face: _Faces) -> Flow[Any]:
        """The flow of one call (a plain function choosing it: one generator on a hit)."""
        cached = CachedCall.build(kwargs, self._wrapped, self.endpoint)
        if cached.key is None:
            return self._bypass(cached)
        if cached.upstream.get("stream"):
            return self._stream(cached, face)
        if cached.policy.refresh:
            return self._refresh(cached)
        return self._cached(cached)

    def _bypass(self, cached: CachedCall) -> Flow[Any]:
        return _mark((yield self._upstream(cached)), "bypass", None)

    def _refresh(self, cached: CachedCall) -> Flow[Any]:
        response = yield self._upstream(cached)
        yield self._store(cached, stored_answer(_dump(response)))
        return _mark(response, "refresh", cached.key)

    def _upstream(self, cached: CachedCall) -> Step:
        return call(self._inner.create, **cached.upstream)

    def _store(self, cached: CachedCall, value: dict[str, Any], **fields: Any) -> Step:
        cache = self._wrapped.cache
        kwargs = {**cached.store_fields(value), **fields}
        return Step(cache.set, cache.aset, (cached.key, value), kwargs)

    def _cached(self, cached: CachedCall) -> Flow[Any]:
        """The stored answer, or the upstream's (stored, and coalesced with identical calls)."""
        cache = self._wrapped.cache
        fresh: list[Any] = []

        def compute() -> Flow[dict[str, Any]]:
            fresh.append((yield self._upstream(cached)))
            return stored_answer(_dump(fresh[0]))

        policy = cached.policy
        options = {
            "namespace": policy.namespace,
            "request": cached.request,
            "kind": self.endpoint,
            "ttl": policy.ttl,
            "describe": cached.describe,
            "store": policy.write,
        }
        step = Step(cache.get_or_compute, cache.aget_or_compute, (cached.key,), options, compute)
        value, status = yield step
        if fresh:
            return _mark(fresh[0], status, cached.key)
        response = _served(self.endpoint, value)
        if response is not None:
            return _mark(response, status, cached.key)
        yield from self._drop(cached)  # a stored value of the wrong shape: a miss
        return _mark((yield self._upstream(cached)), "miss", cached.key)

    def _drop(self, cached: CachedCall) -> Flow[None]:
        log.warning("thrifty dropped an unreadable cached answer %s", (cached.key or "")[:16])
        cache = self._wrapped.cache
        try:
            yield Step(cache.delete, cache.adelete, (cached.key,))
        except Exception as exc:  # fail-open
            log.warning("thrifty could not delete it: %s", exc)

    def _stream(self, cached: CachedCall, face: _Faces) -> Flow[Any]:
        """A streamed chat answer: replayed from the cache, else recorded as it passes."""
        cache = self._wrapped.cache
        if cached.policy.read:
            hit = yield Step(cache.lookup, cache.alookup, (cached.key,), cached.where)
            body = None if hit is None else read_answer(Endpoint.CHAT, hit.value)
            if body is not None:
                include_usage = (cached.request.get("stream_options") or {}).get("include_usage")
                raw = chunks_from_completion(body, include_usage=bool(include_usage))
                chunks = [ChatCompletionChunk.model_validate(c) for c in raw]
                return face.replay(chunks, cached.info(hit.kind))
            if hit is not None:
                yield from self._drop(cached)
        started = time.perf_counter()
        status = "refresh" if cached.policy.refresh else "miss"
        stream = yield self._upstream(cached)
        if not cached.policy.write:
            return _mark(stream, status, cached.key)
        return face.recording(stream, self._recorder(cached, started), cached.info(status))

    def _recorder(self, cached: CachedCall, started: float) -> OnComplete:
        def store(chunks: list[dict[str, Any]]) -> Flow[None]:
            if not stream_finished(chunks):
                log.warning("thrifty did not store a stream that ended without a finish reason")
                return
            latency_ms = (time.perf_counter() - started) * 1000
            yield self._store(cached, stored_stream(chunks), latency_ms=latency_ms)

        return store


class CachedCompletions(_CachedCreate):
    """``client.chat.completions`` of a wrapped ``openai.OpenAI``."""

    endpoint = Endpoint.CHAT

    def create(self, **kwargs: Any) -> Any:
        return run_sync(self._create(kwargs, SYNC_FACE))


class AsyncCachedCompletions(_CachedCreate):
    """``client.chat.completions`` of a wrapped ``openai.AsyncOpenAI``."""

    endpoint = Endpoint.CHAT

    async def create(self, **kwargs: Any) -> Any:
        return await run_async(self._create(kwargs, ASYNC_FACE))


class CachedEmbeddings(CachedCompletions):
    """``client.embeddings`` of a wrapped ``openai.OpenAI``."""

    endpoint = Endpoint.EMBEDDINGS


class AsyncCachedEmbeddings(AsyncCachedCompletions):
    """``client.embeddings`` of a wrapped ``openai.AsyncOpenAI``."""

    endpoint = Endpoint.EMBEDDINGS


class CachedChat(_Proxy):
    """``client.chat`` with cached ``completions``."""

    def __init__(self, inner: Any, wrapped: Wrapped, completions: type[_Proxy]) -> None:
        super().__init__(inner, wrapped)
        self.completions = completions(inner.completions, wrapped)


class CachedClient(_Proxy):
    """A wrapped ``openai.OpenAI`` / ``openai.AsyncOpenAI``; see :func:`wrap`."""

    def __init__(self, inner: Any, wrapped: Wrapped) -> None:
        super().__init__(inner, wrapped)
        is_async = isinstance(inner, openai.AsyncOpenAI)
        completions = AsyncCachedCompletions if is_async else CachedCompletions
        embeddings = AsyncCachedEmbeddings if is_async else CachedEmbeddings
        self.chat = CachedChat(inner.chat, wrapped, completions)
        self.embeddings = embeddings(inner.embeddings, wrapped)
        self.thrifty_cache = wrapped.cache

    def with_options(self, **options: Any) -> CachedClient:
        """The SDK's ``with_options``, still cached."""
        return CachedClient(self._inner.with_options(**options), self._wrapped)

    copy = with_options


def wrap(
    client: Any,
    cache: Cache | None = None,
    *,
    namespace: str | None = None,
    ttl: float | None = None,
    cache_temperature: bool = False,
) -> Any:
    """Return ``client`` with cached, accounted chat completions and embeddings.

    Args:
        client: an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` (or a subclass such as Azure's).
        cache: the :class:`thrifty.Cache` to use (default: ``thrifty.Cache()``, SQLite).
        namespace: namespace (tenant) for this client's entries; the cache's default otherwise.
        cache_temperature: also cache chat requests sampled at ``temperature > 0`` (off by
            default: a caller asking for randomness gets a fresh sample; a request that leaves
            temperature out is cached).
        ttl: lifetime of this client's entries in seconds (the cache's default otherwise).

    Raises:
        ConfigError: ``client`` is not an OpenAI SDK client, ``cache`` is not a Cache, or a
            bad ``namespace`` or ``ttl``.
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
    options = {"namespace": namespace or None, "ttl": ttl, "cache_temperature": cache_temperature}
    return CachedClient(client, Wrapped(cache, CachePolicy().with_options(options)))
