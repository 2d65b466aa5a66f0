"""The HTTP endpoints: OpenAI's ``/v1/*``, health, metrics and the admin API.

Model endpoints run the request chain of ``server/chain.py``; the others are small handlers
over the one or two parts they use. All of them go through the :class:`Respond` boundary (the
error table, ``X-Thrifty-*`` headers, request metrics) except health and metrics, which must
answer even when everything else is broken.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from thrifty.audit import AuditAction, AuditRecord, AuditResult, subject
from thrifty.safety.purge import purge_user
from thrifty.server.admin_audit import audit_query
from thrifty.server.auth import bearer_token, key_id
from thrifty.server.bodies import json_response, read_json
from thrifty.server.cascade import route_feedback
from thrifty.server.chain import model_chain
from thrifty.server.context import Operation, RequestContext
from thrifty.server.dashboard import dashboard_routes
from thrifty.server.errors import APIError
from thrifty.server.gateway import Gateway
from thrifty.server.ledger_api import ledger_handlers
from thrifty.server.respond import Respond
from thrifty.server.schemas import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    FeedbackRequest,
    InvalidateRequest,
    PurgeUserRequest,
    validate_body,
)

#: The model endpoints (declared once): path -> what each serves.
OPERATIONS = {
    "/v1/chat/completions": Operation("chat", ChatRequest, "chat", streams=True),
    "/v1/completions": Operation(
        "completions", CompletionRequest, "completion", "completion", replays=True
    ),
    "/v1/embeddings": Operation("embeddings", EmbeddingRequest, "embeddings", "embeddings"),
}

Endpoint = Callable[[Request], Awaitable[Any]]


def _handlers(gw: Gateway) -> dict[str, tuple[str, str, Callable[[RequestContext], Any]]]:
    """The non-model endpoints: path -> (method, metrics label, handler)."""
    keys, cache, pool, routes = gw.keys, gw.cache, gw.pool, gw.routes

    async def list_models(ctx: RequestContext) -> Response:
        keys.authenticate(ctx.request.headers)
        data = [
            {"id": name, "object": "model", "created": gw.started, "owned_by": "thrifty"}
            for name in gw.catalog.names()
        ]
        return json_response({"object": "list", "data": data})

    async def record(
        ctx: RequestContext,
        action: AuditAction,
        target: dict[str, Any],
        result: AuditResult = AuditResult.OK,
        **detail: Any,
    ) -> None:
        """Append to the audit log (off the event loop: the log is a backend write)."""
        token = bearer_token(ctx.request.headers)
        actor = "admin:" + key_id(token) if token else "anonymous"
        entry = AuditRecord(action, actor, target, result, detail)
        await asyncio.to_thread(gw.audit.record, entry)

    async def feedback(ctx: RequestContext) -> Response:
        """Tell the semantic threshold policy whether a served semantic hit was right, or a
        route model whether its cheapest model's answer was good enough (a training outcome).
        Only the tenant that was served the hit may judge it (an unknown hit and another
        tenant's hit get the same 404, so ids cannot be probed)."""
        principal = keys.authenticate(ctx.request.headers)
        report = validate_body(FeedbackRequest, await read_json(ctx.request, 4096))
        if report.route_id is not None:
            verdict = await route_feedback(
                routes, report.route_id, report.correct, principal.tenant
            )
            return json_response(verdict)
        if cache.semantic is None:
            raise APIError(400, "semantic caching is off on this gateway", code="semantic_off")
        hit_id = report.hit_id or ""
        if not await cache.afeedback(hit_id, report.correct, tenant=principal.tenant):
            # not recorded: unknown ids cost an attacker nothing, so they must not grow the log
            raise APIError(404, f"no recent semantic hit has the id {hit_id!r}",
                           param="hit_id", code="unknown_hit")  # fmt: skip
        target = {"tenant": principal.tenant, "hit_id": hit_id}
        entry = AuditRecord(AuditAction.FEEDBACK, f"key:{principal.key_id}", target,
                            detail={"correct": report.correct})  # fmt: skip
        await asyncio.to_thread(gw.audit.record, entry)
        if not report.correct and gw.ledger is not None:  # the ledger row's wrong-hit flag
            await asyncio.to_thread(gw.ledger.mark_wrong_hit, report.hit_id or "")
        if not report.correct:
            gw.metrics.semantic_wrong_hits.labels(principal.tenant).inc()
        return json_response({"hit_id": report.hit_id, "recorded": True})

    async def admin_stats(ctx: RequestContext) -> Response:
        keys.require_admin(ctx.request.headers)
        namespace = ctx.request.query_params.get("namespace") or None
        stats = await cache.astats(namespace)
        payload = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
        payload["hit_rate"] = stats.hit_rate
        await record(ctx, AuditAction.STATS, {"namespace": namespace})
        return json_response(
            {"namespace": namespace, "cache": payload, "deployments": pool.health()}
        )

    async def admin_invalidate(ctx: RequestContext) -> Response:
        keys.require_admin(ctx.request.headers)
        selector = validate_body(InvalidateRequest, await read_json(ctx.request, 65536))
        fields = selector.model_dump(exclude_none=True)
        key = fields.pop("key", None)
        if key is not None:  # one entry, by the key its response reported
            if fields:
                raise APIError(400, "key cannot be combined with other fields", param="key")
            removed = int(await cache.adelete(key))
            await record(ctx, AuditAction.DELETE, {"key": key}, removed=removed)
            return json_response({"invalidated": removed})
        if not fields:
            raise APIError(400, "give at least one of namespace, tag, model, model_version, "
                           "user, key", code="empty_selector")  # fmt: skip
        target = {k: subject(v) if k == "user" else v for k, v in fields.items()}
        fields["user_id"] = fields.pop("user", None)
        try:
            removed = await cache.ainvalidate(**{k: v for k, v in fields.items() if v is not None})
        except Exception as exc:
            await record(ctx, AuditAction.INVALIDATE, target, AuditResult.ERROR,
                         error=type(exc).__name__)  # fmt: skip
            raise
        await record(ctx, AuditAction.INVALIDATE, target, removed=removed)
        return json_response({"invalidated": removed})

    async def admin_purge_user(ctx: RequestContext) -> Response:
        """Every entry of the user removed and erased from disk, then the purge hooks."""
        keys.require_admin(ctx.request.headers)
        purge = validate_body(PurgeUserRequest, await read_json(ctx.request, 65536))
        target = {"user": subject(purge.user)}
        await gw.tasks.drain()  # the user's answers still being stored (streams, write-behind)
        await cache.adrain()  # go too
        try:
            report = await asyncio.to_thread(purge_user, cache, purge.user, gw.purge_hooks)
        except Exception as exc:
            await record(ctx, AuditAction.PURGE_USER, target, AuditResult.ERROR,
                         error=type(exc).__name__)  # fmt: skip
            raise
        result = AuditResult.OK if report.error is None else AuditResult.ERROR
        await record(ctx, AuditAction.PURGE_USER, target, result, **report.to_dict())
        details = {k: v for k, v in report.to_dict().items() if k != "entries"}
        return json_response({"user": purge.user, "purged": report.entries, **details})

    async def admin_audit(ctx: RequestContext) -> Response:
        """The audit log, newest first: ``?since=`` (epoch seconds or ISO 8601), ``?action=``
        (an action, or a prefix ending in ``.``), ``?limit=`` (1-1000, default 100)."""
        keys.require_admin(ctx.request.headers)
        since, action, limit = audit_query(ctx.request.query_params)
        try:
            records = await asyncio.to_thread(
                gw.audit.read, since=since, action=action, limit=limit
            )
        except Exception as exc:  # the backend is down: say so, never a 500
            raise APIError(503, f"the audit log cannot be read now ({type(exc).__name__})",
                           code="audit_unavailable") from exc  # fmt: skip
        await record(ctx, AuditAction.AUDIT_READ, {"since": since, "action": action})
        return json_response(
            {"object": "list", "data": [r.to_dict() for r in records], "durable": gw.audit.durable}
        )

    return {
        "/v1/models": ("GET", "models", list_models),
        "/v1/thrifty/feedback": ("POST", "feedback", feedback),
        "/admin/stats": ("GET", "admin", admin_stats),
        "/admin/invalidate": ("POST", "admin", admin_invalidate),
        "/admin/purge-user": ("POST", "admin", admin_purge_user),
        "/admin/audit": ("GET", "admin", admin_audit),
        **ledger_handlers(keys, gw.ledger),
    }


def _probes(gw: Gateway) -> list[Route]:
    """Health and metrics: answered directly, outside the request metrics."""

    async def liveness(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readiness(request: Request) -> Response:
        ok, report = await gw.ready()
        return json_response(report, status=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        body, content_type = gw.metrics.render()
        return Response(body, media_type=content_type)

    return [
        Route("/health/liveness", liveness, methods=["GET"]),
        Route("/health/readiness", readiness, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def http_routes(gw: Gateway) -> list[Route]:
    """Every route of the gateway, the ``/v1`` ones also without the prefix (for clients
    configured with a bare base URL)."""
    chain = model_chain(gw)
    routes = [
        # bound methods: Starlette treats a callable object as a raw ASGI app
        Route(
            path,
            Respond(op.name, chain, metrics=gw.metrics, operation=op).__call__,
            methods=["POST"],
        )
        for path, op in OPERATIONS.items()
    ]
    routes += [
        Route(path, Respond(name, handler, metrics=gw.metrics).__call__, methods=[method])
        for path, (method, name, handler) in _handlers(gw).items()
    ]
    routes += _probes(gw)
    routes += dashboard_routes(gw)
    return routes + [
        Route(r.path.removeprefix("/v1"), r.endpoint, methods=r.methods)
        for r in routes
        if r.path.startswith("/v1/")
    ]
