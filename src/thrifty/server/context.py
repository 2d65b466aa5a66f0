"""The request context that every stage of the chain reads and fills, and the stage protocol.

A request's stages (``server/chain.py``) share one :class:`RequestContext`: what was asked
(the operation, body, caller, cache policy) and what happened (cache status, route, cost,
savings, upstream time), which the ``Respond`` boundary turns into ``X-Thrifty-*`` headers and
metrics. Stages receive their collaborators at construction, never the whole gateway, and
pass the context on to the next stage, as Starlette's middleware pass the ASGI scope.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

if TYPE_CHECKING:  # types only: the context is filled by the stages, never imports them
    from thrifty.accounting.tokens import Usage
    from thrifty.limits import Reservation
    from thrifty.server.auth import Principal
    from thrifty.server.cascade import RouteTrace
    from thrifty.server.policy import CachePolicy, Status
    from thrifty.server.schemas import ThriftyOptions


@dataclass(frozen=True, slots=True)
class Operation:
    """One model endpoint: what it validates, which provider method and cache family it uses.

    Attributes:
        name: the endpoint label of metrics (``chat``, ``completions``, ``embeddings``).
        schema: the pydantic model of its body.
        method: the provider method (``chat``, ``completion``, ``embeddings``).
        requires: the optional provider operation a deployment must serve (None: any serves).
        streams: streamed requests are relayed from a streaming upstream (chat).
        replays: a streamed request is answered whole and replayed as SSE (completions); the
            stream fields never reach the upstream nor the cache key.
    """

    name: str
    schema: type[Any]
    method: str
    requires: str | None = None
    streams: bool = False
    replays: bool = False

    @property
    def kind(self) -> str:
        """The cache key family (the provider method's name)."""
        return self.method


@dataclass(slots=True)
class RequestContext:
    """One request on its way through the stages."""

    request: Request
    endpoint: str
    operation: Operation | None = None
    started: float = field(default_factory=time.perf_counter)
    # ------------------------------------------------------------ what was asked
    principal: Principal | None = None
    model: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    cache_body: dict[str, Any] | None = None
    """What the cache keys and files the answer under when it is not ``body``: compression
    sends the compressed prompt but keys on the original request (plus its compression
    settings) unless the caller opts in to the compressed key."""
    policy: CachePolicy | None = None
    options: ThriftyOptions | None = None
    """The request's ``thrifty`` body field (removed from ``body``), for the stages it concerns."""
    stream: bool = False
    """Relayed from a streaming upstream (a streamed chat request)."""
    sse: bool = False
    """Answered as server-sent events (streamed, or a whole answer replayed as a stream)."""
    # ------------------------------------------------------------ what happened
    key: str = ""
    """The cache key, once a cache stage computed it."""
    tags: list[str] | None = None
    """Tags of the stored answer (the documents it was built on: ``server/freshness.py``)."""
    reservation: Reservation | None = None
    answered_by: str = ""
    """The model name of the deployment that answered (a fallback's, a cascade's)."""
    deployment_id: str = ""
    fields: dict[str, Any] | None = None
    """The cache entry's accounting fields of a fresh answer (tokens, cost, model)."""
    status: Status | None = None
    route: str | None = None
    cost_usd: float | None = None
    saved_usd: float = 0.0
    upstream_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    routing: RouteTrace | None = None
    stream_listeners: list[Callable[[dict[str, Any]], Awaitable[None]]] = field(
        default_factory=list
    )
    """Called with the assembled ``chat.completion`` once a relayed stream ended normally (after
    the client had it): what a plain answer's stages do on the value, for streams."""
    chain_start: int = 0
    """How many models at the head of the requested model's chain (a route's chain, or a model
    and its fallbacks) already declined: a student that deferred. ``Route`` starts after them."""
    """What a route model (``thrifty/auto``) decided, when one was asked."""
    mechanism: str = ""
    """What answered or made the answer cheaper (``thrifty.ledger.Mechanism``); empty: a
    plain miss. A stage that answers instead of the upstream (a student) sets it."""
    usage: Usage | None = None
    """The billed tokens of the answer (a hit's: those its original call was billed)."""

    @property
    def keyed_body(self) -> dict[str, Any]:
        """The body the cache keys on and files the answer under (see ``cache_body``)."""
        return self.body if self.cache_body is None else self.cache_body

    def thrifty_headers(self) -> dict[str, str]:
        out = dict(self.headers)
        if self.status is not None:
            out["X-Thrifty-Cache-Status"] = self.status
        if self.route is not None:
            out["X-Thrifty-Route"] = self.route
        if self.key:  # what POST /admin/invalidate {"key": ...} deletes
            out["X-Thrifty-Cache-Key"] = self.key
        if self.cost_usd is not None:
            out["X-Thrifty-Cost-USD"] = _usd(self.cost_usd)
        if self.status is not None:
            out["X-Thrifty-Saved-USD"] = _usd(self.saved_usd)
        return out


def _usd(value: float) -> str:
    return f"{value:.10f}".rstrip("0").rstrip(".") or "0"


#: A stage as seen from the stage before it: takes the context, returns the answer.
Handler = Callable[[RequestContext], Awaitable[Any]]


class Stage:
    """A link of the chain: does its part, then awaits ``self.next`` (or answers by itself).

    Subclasses take ``next`` first and their collaborators as keywords, so a chain is built as
    ``stage = cls(stage, **collaborators)`` from the innermost stage out.
    """

    __slots__ = ("next",)

    def __init__(self, next: Handler) -> None:
        self.next = next

    async def __call__(self, ctx: RequestContext) -> Any:
        return await self.next(ctx)
