"""The request path of a model endpoint, as one list of stages.

A model request (``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``) goes through
these stages, outermost first; each is a small class given only its collaborators::

    Respond        respond.py   the boundary: error table, X-Thrifty-* headers, request metrics
    Encode         stages.py    the answer as JSON or SSE
    Authenticate   stages.py    the caller's key -> tenant and limits (401)
    ReadRequest    stages.py    body, schema, model name, cache policy (400/404/413)
    Record         accounting.py  the request's ledger row, once answered (streams: at their end)
    TagRequest     freshness.py  the answer's tags (its documents) and their TTLs
    Compress       compressing.py  RAG context of chat requests cut to what the question needs
    ByStream       stages.py    a streamed chat request forks to STREAMED, the rest to PLAIN
      PLAIN                                  STREAMED
      CacheLookup  caching.py  hit/coalesce  StreamLookup  streamed.py  replay/follow a tee
      Reserve      stages.py   key limits    Reserve       stages.py    key limits (429)
      StudentFirst distilling.py a confident student answers, else the teacher (both chains)
      RecordPairs  distilling.py teacher answers appended as training pairs (both chains)
      Account      stages.py   cost, settle  ShareStream   streamed.py  tee; account+store at end
      Route        stages.py   pool, routes  Route         stages.py    pool, route models
      CallUpstream stages.py   one attempt   OpenStream    streamed.py  one attempt, 1st chunk

A cache hit stops at the cache stage: limits are taken only for what reaches an upstream, and
the cost of an answer is known only once ``Route`` returned, so ``Account`` wraps ``Route``.

Adding a stage is one class and one line. A PII guard that must see every request that can
reach an upstream, hit or miss, goes before the cache::

    class PiiGuard(Stage):
        def __init__(self, next: Handler, *, detector: Detector) -> None:
            super().__init__(next)
            self.detector = detector

        async def __call__(self, ctx: RequestContext) -> Any:
            self.detector.check(ctx.body)  # raises a typed error: add its row to ERROR_TABLE
            return await self.next(ctx)

    head = [..., (ReadRequest, {...}), (PiiGuard, {"detector": detector})]

A student model answering before the upstream goes between ``Reserve`` and ``Account`` in
``plain``; a savings ledger next to ``Account`` (it sees ``ctx.fields``); compression of stored
answers belongs to the cache, not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from thrifty.routing.affinity import PrefixAffinity
from thrifty.safety.pii import PIIDetector
from thrifty.server.accounting import Record
from thrifty.server.caching import CacheLookup
from thrifty.server.compressing import Compress
from thrifty.server.context import Handler
from thrifty.server.distilling import PairLog, RecordPairs, StudentFirst, student_routes
from thrifty.server.freshness import TagRequest
from thrifty.server.gateway import Gateway
from thrifty.server.stages import (
    Account,
    Authenticate,
    ByStream,
    CallUpstream,
    Encode,
    ReadRequest,
    Reserve,
    Route,
)
from thrifty.server.streamed import OpenStream, ShareStream, StreamLookup

#: A stage class and its collaborators: built as ``cls(next, **collaborators)``.
StageSpec = tuple[type[Any], Mapping[str, Any]]


def compose(stages: Sequence[StageSpec], innermost: Handler) -> Handler:
    """The stages around ``innermost``, the first of ``stages`` outermost (Starlette builds
    its middleware stack the same way: ``app = cls(app, **options)``)."""
    handler = innermost
    for cls, collaborators in reversed(stages):
        handler = cls(handler, **collaborators)
    return handler


def recorder(gw: Gateway) -> dict[str, Any]:
    """The collaborators of :class:`RecordPairs` from the ``distill:`` block."""
    settings = gw.config.distill
    assert settings.record is not None
    pii = gw.config.cache.pii
    return {
        "log": PairLog(settings.record),
        "models": None if settings.models is None else frozenset(settings.models),
        "students": frozenset(
            e.model_name for e in gw.config.model_list if e.litellm_params.kind == "student"
        ),
        "detector": None if pii == "off" else PIIDetector(custom=dict(gw.config.cache.pii_custom)),
    }


def model_chain(gw: Gateway) -> Handler:
    """The chain every model endpoint runs, built once from the gateway's parts."""
    cache, streams, metrics = gw.cache, gw.streams, gw.metrics
    accountant, tasks, limiter = gw.accountant, gw.tasks, gw.limiter
    plain: list[StageSpec] = [
        (CacheLookup, {"cache": cache, "streams": streams, "accountant": accountant,
                       "metrics": metrics, "tasks": tasks}),
        (Reserve, {"limiter": limiter}),
        (Account, {"accountant": accountant}),
    ]  # fmt: skip
    streamed: list[StageSpec] = [
        (StreamLookup, {"cache": cache, "streams": streams, "accountant": accountant,
                        "metrics": metrics, "tasks": tasks}),
        (Reserve, {"limiter": limiter}),
        (ShareStream, {"cache": cache, "streams": streams, "accountant": accountant,
                       "metrics": metrics, "tasks": tasks}),
    ]  # fmt: skip
    # a student answers before the teacher; teacher answers become training pairs
    students = student_routes(gw.config, gw.pool)
    if gw.config.distill.record is not None:
        record: StageSpec = (RecordPairs, recorder(gw))
        plain.insert(2, record)
        streamed.insert(2, record)
    if students:
        first: StageSpec = (StudentFirst, {"students": students, "accountant": accountant})
        plain.insert(2, first)
        streamed.insert(2, first)
    head: list[StageSpec] = [
        (Encode, {}),
        (Authenticate, {"keys": gw.keys}),
        (ReadRequest, {"catalog": gw.catalog, "cache": gw.config.cache,
                       "max_bytes": gw.config.server.max_body_bytes,
                       "max_depth": gw.config.server.max_json_depth}),
        (Record, {"accountant": accountant}),  # the ledger row (streams: when they end)
        (TagRequest, {"tag_ttl": gw.config.cache.tag_ttl}),
        # before the cache: the compressed prompt is what is answered, stored and limited
        (Compress, {"settings": gw.config.compression, "pricer": gw.pricer, "metrics": metrics}),
    ]  # fmt: skip
    router = gw.config.router_settings
    affinity = (PrefixAffinity(send_key=router.prompt_cache_key)
                if router.prompt_cache_affinity else None)  # fmt: skip
    plain_route = Route(CallUpstream(), pool=gw.pool, routes=gw.routes, metrics=metrics,
                        check_output=True, affinity=affinity)  # fmt: skip
    stream_route = Route(OpenStream(pool=gw.pool, metrics=metrics), pool=gw.pool,
                         routes=gw.routes, metrics=metrics, check_output=False,
                         affinity=affinity)  # fmt: skip
    return compose(
        head,
        ByStream(plain=compose(plain, plain_route), stream=compose(streamed, stream_route)),
    )
