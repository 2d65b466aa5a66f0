"""The HTTP endpoints: OpenAI's ``/v1/*``, health, metrics and the admin API.

Each model endpoint is a thin function over :mod:`thrifty.server.pipeline`; :func:`endpoint`
wraps it with what every request needs (error bodies, overhead header, request metrics).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from thrifty.server.cascade import route_feedback
from thrifty.server.errors import APIError
from thrifty.server.gateway import Gateway, audit, log
from thrifty.server.pipeline import Call, answer, stream_chat
from thrifty.server.policy import cache_policy
from thrifty.server.schemas import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    FeedbackRequest,
    InvalidateRequest,
    PurgeUserRequest,
    validate_body,
)
from thrifty.server.streaming import SSEResponse, replay, text_completion_chunks

Handler = Callable[[Request, Gateway, Call], Awaitable[Any]]


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    return Response(orjson.dumps(payload), status_code=status, headers=headers,
                    media_type="application/json")


async def read_json(request: Request, max_bytes: int) -> Any:
    """The decoded JSON body.

    Raises:
        APIError: 413 past ``max_bytes`` (declared or actual), 400 for malformed JSON.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise APIError(413, f"the request body exceeds {max_bytes} bytes", code="body_too_large")
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > max_bytes:
            raise APIError(413, f"the request body exceeds {max_bytes} bytes",
                           code="body_too_large")
        parts.append(part)
    try:
        return orjson.loads(b"".join(parts))
    except orjson.JSONDecodeError as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc}",
                       code="invalid_json") from None


def endpoint(name: str, handler: Handler) -> Callable[[Request], Awaitable[Any]]:
    """Wrap ``handler`` so every outcome becomes a response with headers and metrics."""

    async def run(request: Request) -> Any:
        gw: Gateway = request.app.state.gateway
        call = Call(name)
        try:
            response = await handler(request, gw, call)
        except APIError as exc:
            response = exc.response()
        except Exception:
            log.exception("unexpected error in %s", name)
            response = APIError(500, "internal error in the gateway",
                                code="internal_error").response()
        headers = call.thrifty_headers()
        overhead = time.perf_counter() - call.started - call.upstream_seconds
        headers["X-Thrifty-Overhead-Ms"] = f"{overhead * 1000:.3f}"
        if isinstance(response, SSEResponse):
            response.headers.update(headers)
            status = 200
        else:  # new names only: appending skips MutableHeaders' scan per header
            response.raw_headers.extend(
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in headers.items()
            )
            status = response.status_code
        metrics = gw.metrics
        metrics.requests.labels(name, metrics.model_label(call.model), str(status)).inc()
        metrics.overhead.labels(name).observe(max(overhead, 0.0))
        return response

    return run


async def _model_request(request: Request, gw: Gateway, call: Call, schema: type[Any],
                         operation: str | None) -> tuple[Any, Any, dict[str, Any], Any]:
    """Authenticate, read, validate; returns (principal, parsed, upstream body, policy)."""
    principal = gw.keys.authenticate(request.headers)
    body = await read_json(request, gw.config.server.max_body_bytes)
    parsed = validate_body(schema, body)
    call.model = parsed.model
    gw.require_model(parsed.model, operation)
    policy = cache_policy(
        request.headers, parsed.thrifty, tenant=principal.tenant,
        temperature=getattr(parsed, "temperature", None), enabled=gw.config.cache.enabled,
        cache_temperature=gw.config.cache.cache_temperature,
    )
    body.pop("thrifty", None)
    return principal, parsed, body, policy


async def chat_completions(request: Request, gw: Gateway, call: Call) -> Any:
    principal, parsed, body, policy = await _model_request(request, gw, call, ChatRequest, None)
    if parsed.stream:
        events = await stream_chat(gw, call, principal, model=parsed.model, body=body,
                                   policy=policy)
        return SSEResponse(events)
    value = await answer(gw, call, principal, model=parsed.model, operation="chat",
                         kind="chat", body=body, policy=policy)
    return json_response(value)


async def completions(request: Request, gw: Gateway, call: Call) -> Any:
    principal, parsed, body, policy = await _model_request(
        request, gw, call, CompletionRequest, "completion"
    )
    # Fetched whole (and replayed as a stream if asked): stream options do not apply upstream.
    body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    value = await answer(gw, call, principal, model=parsed.model, operation="completion",
                         kind="completion", body=body, policy=policy)
    if parsed.stream:
        return SSEResponse(replay(text_completion_chunks(value)))
    return json_response(value)


async def embeddings(request: Request, gw: Gateway, call: Call) -> Any:
    principal, parsed, body, policy = await _model_request(
        request, gw, call, EmbeddingRequest, "embeddings"
    )
    value = await answer(gw, call, principal, model=parsed.model, operation="embeddings",
                         kind="embeddings", body=body, policy=policy)
    return json_response(value)


async def list_models(request: Request, gw: Gateway, call: Call) -> Any:
    gw.keys.authenticate(request.headers)
    data = [{"id": name, "object": "model", "created": gw.started, "owned_by": "thrifty"}
            for name in [*gw.pool.models(), *gw.routes]]
    return json_response({"object": "list", "data": data})


async def liveness(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readiness(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    ok, reason = await gw.ready()
    return json_response({"status": "ok" if ok else "unavailable", "cache": reason},
                         status=200 if ok else 503)


async def metrics(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    body, content_type = gw.metrics.render()
    return Response(body, media_type=content_type)


async def feedback(request: Request, gw: Gateway, call: Call) -> Any:
    """Tell the semantic threshold policy whether a served semantic hit was right, or a route
    model whether its cheapest model's answer was good enough (a training outcome)."""
    gw.keys.authenticate(request.headers)
    report = validate_body(FeedbackRequest, await read_json(request, 4096))
    if report.route_id is not None:
        return json_response(await route_feedback(gw, report.route_id, report.correct))
    if gw.cache.semantic is None:
        raise APIError(400, "semantic caching is off on this gateway", code="semantic_off")
    if not await gw.cache.afeedback(report.hit_id or "", report.correct):
        raise APIError(404, f"no recent semantic hit has the id {report.hit_id!r}",
                       param="hit_id", code="unknown_hit")
    return json_response({"hit_id": report.hit_id, "recorded": True})


# ------------------------------------------------------------------------ admin
async def admin_stats(request: Request, gw: Gateway, call: Call) -> Any:
    gw.keys.require_admin(request.headers)
    namespace = request.query_params.get("namespace") or None
    stats = await gw.cache.astats(namespace)
    payload = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    payload["hit_rate"] = stats.hit_rate
    return json_response({"namespace": namespace, "cache": payload,
                          "deployments": gw.pool.health()})


async def admin_invalidate(request: Request, gw: Gateway, call: Call) -> Any:
    gw.keys.require_admin(request.headers)
    selector = validate_body(InvalidateRequest, await read_json(request, 65536))
    fields = selector.model_dump(exclude_none=True)
    if not fields:
        raise APIError(400, "give at least one of namespace, tag, model, model_version, user",
                       code="empty_selector")
    fields["user_id"] = fields.pop("user", None)
    removed = await gw.cache.ainvalidate(**{k: v for k, v in fields.items() if v is not None})
    audit.info("admin invalidate %s: %d entries removed", fields, removed)
    return json_response({"invalidated": removed})


async def admin_purge_user(request: Request, gw: Gateway, call: Call) -> Any:
    gw.keys.require_admin(request.headers)
    purge = validate_body(PurgeUserRequest, await read_json(request, 65536))
    removed = await gw.cache.ainvalidate(user_id=purge.user)
    audit.info("admin purge of user %r: %d entries removed", purge.user, removed)
    return json_response({"user": purge.user, "purged": removed})


ROUTES = [
    Route("/v1/chat/completions", endpoint("chat", chat_completions), methods=["POST"]),
    Route("/v1/completions", endpoint("completions", completions), methods=["POST"]),
    Route("/v1/embeddings", endpoint("embeddings", embeddings), methods=["POST"]),
    Route("/v1/models", endpoint("models", list_models), methods=["GET"]),
    Route("/v1/thrifty/feedback", endpoint("feedback", feedback), methods=["POST"]),
    Route("/health/liveness", liveness, methods=["GET"]),
    Route("/health/readiness", readiness, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/admin/stats", endpoint("admin", admin_stats), methods=["GET"]),
    Route("/admin/invalidate", endpoint("admin", admin_invalidate), methods=["POST"]),
    Route("/admin/purge-user", endpoint("admin", admin_purge_user), methods=["POST"]),
]
# The same model routes without the /v1 prefix, for clients configured with a bare base URL.
ROUTES += [Route(r.path.removeprefix("/v1"), r.endpoint, methods=r.methods)
           for r in ROUTES if r.path.startswith("/v1/")]
