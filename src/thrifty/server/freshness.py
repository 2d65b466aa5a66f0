"""Keeping RAG answers fresh: the documents a request was answered from tag its cached answer,
and tags (or namespaces) may set how long such answers live.

A request names its documents with ``X-Thrifty-Tags: doc:42, doc:7``, ``thrifty.tags``, or the
ids of the documents in ``thrifty.context``; the stored answer carries those tags, so
``POST /admin/invalidate {"tag": "doc:42"}`` (or ``thrifty cache invalidate --tag doc:42``)
drops every answer built on document 42 once it changes. ``cache.tag_ttl`` gives tags a
lifetime (exchange rates an hour): an answer lives as long as the shortest of its tags allows,
unless the request set its own TTL. ``cache.namespace_ttl`` does the same per namespace (in the
cache itself).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from thrifty.server.context import Handler, RequestContext, Stage
from thrifty.server.errors import APIError
from thrifty.server.schemas import ContextDocument

TAGS_HEADER = "x-thrifty-tags"
#: At most this many tags per request (each one is a row or a set member in the store).
MAX_TAGS = 64


def request_tags(ctx: RequestContext) -> list[str]:
    """The tags a request names, in first-seen order.

    Raises:
        APIError: 400 for more than :data:`MAX_TAGS` tags.
    """
    tags: list[str] = []
    header = ctx.request.headers.get(TAGS_HEADER)
    if header:
        tags.extend(t.strip() for t in header.split(","))
    options = ctx.options
    if options is not None:
        tags.extend(options.tags or [])
        for entry in options.context or []:
            if isinstance(entry, ContextDocument) and entry.id:
                tags.append(entry.id)
    unique = list(dict.fromkeys(t for t in tags if t))
    if len(unique) > MAX_TAGS:
        raise APIError(400, f"at most {MAX_TAGS} tags per request", param=TAGS_HEADER)
    return unique


class TagRequest(Stage):
    """Tags the request's cached answer with its documents; applies the tags' TTLs.

    Args:
        tag_ttl: seconds an answer carrying a tag lives (``cache.tag_ttl``).
    """

    def __init__(self, next: Handler, *, tag_ttl: Mapping[str, float]) -> None:
        super().__init__(next)
        self.tag_ttl = dict(tag_ttl)

    async def __call__(self, ctx: RequestContext) -> Any:
        tags = request_tags(ctx)
        if tags:
            ctx.tags = tags
            lifetimes = [self.tag_ttl[t] for t in tags if t in self.tag_ttl]
            policy = ctx.policy
            if lifetimes and policy is not None and policy.ttl is None:
                ctx.policy = dataclasses.replace(policy, ttl=min(lifetimes))
        return await self.next(ctx)
