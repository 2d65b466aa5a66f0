"""The OpenAPI document (``GET /openapi.json``) and a page that shows it (``GET /docs``).

Written from the very pydantic models that validate the requests (``server/schemas.py``), so
the document cannot drift from what the gateway accepts; a test checks that every route the app
serves is documented. A new route is one :class:`Operation` row in :data:`OPERATIONS`.

``/docs`` is a self-contained HTML page rendered here from the document: the gateway serves
on networks without internet access, so a page that loads Swagger UI from a CDN would show
nothing, and the Swagger UI packaged for Python (4.x) cannot render OpenAPI 3.1.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from thrifty.server.schemas import (
    ChatRequest,
    CompletionRequest,
    CreateBatchRequest,
    EmbeddingRequest,
    ErrorBody,
    FeedbackRequest,
    InvalidateRequest,
    PurgeUserRequest,
)

REF = "#/components/schemas/{model}"
_ID_CHARS = str.maketrans({"/": "_", "-": "_", ".": "_", "{": None, "}": None})
JSON = "application/json"


@dataclass(frozen=True)
class Operation:
    """One documented route.

    Args:
        body: the pydantic model of a JSON body, a ready schema (a multipart form), or None.
        auth: ``"key"`` (a tenant's API key, when keys are configured), ``"admin"`` or None.
        answers: the success statuses and what each carries (``"json"``, ``"text"``,
            ``"jsonl"``, ``"sse+json"``).
        errors: the error statuses the route answers with an :class:`ErrorBody`.
        query: its query parameters (OpenAPI parameter objects).
    """

    method: str
    path: str
    summary: str
    tag: str
    body: type[BaseModel] | Mapping[str, Any] | None = None
    auth: str | None = "key"
    answers: Mapping[int, str] | None = None
    errors: Sequence[int] = (400, 401, 404, 413, 429)
    query: Sequence[Mapping[str, Any]] = ()


_MODEL_ERRORS = (400, 401, 404, 413, 429, 499, 502, 503, 504)
_UPLOAD = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file", "purpose"],
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "purpose": {"type": "string", "enum": ["batch"]},
            },
        }
    }
}
_AUDIT_QUERY = (
    {"name": "since", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "epoch seconds or ISO 8601"},
    {"name": "action", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "an action, or a prefix ending in '.'"},
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
)  # fmt: skip
_PERIOD = (
    {
        "name": "since",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "epoch seconds or ISO date/time (UTC)",
    },
    {"name": "until", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "tenant", "in": "query", "required": False, "schema": {"type": "string"}},
)
_BUCKET = {
    "name": "bucket",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["hour", "day"]},
}
_FILE_ID = {"name": "file_id", "in": "path", "required": True, "schema": {"type": "string"}}
_BATCH_ID = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}

#: Every route the gateway serves (the ``/v1`` ones are also served without the prefix).
OPERATIONS: tuple[Operation, ...] = (
    Operation("POST", "/v1/chat/completions", "Chat completion (stream: SSE), cached", "models",
              ChatRequest, answers={200: "sse+json"}, errors=_MODEL_ERRORS),
    Operation("POST", "/v1/completions", "Text completion, cached", "models",
              CompletionRequest, answers={200: "sse+json"}, errors=_MODEL_ERRORS),
    Operation("POST", "/v1/embeddings", "Embeddings, cached", "models", EmbeddingRequest,
              errors=_MODEL_ERRORS),
    Operation("GET", "/v1/models", "The models this gateway serves", "models",
              errors=(401,)),
    Operation("POST", "/v1/thrifty/feedback", "Whether a semantic hit or routed answer was right",
              "cache", FeedbackRequest),
    Operation("POST", "/v1/files", "Upload a batch input file (JSONL)", "batches", _UPLOAD),
    Operation("GET", "/v1/files/{file_id}", "A file's record", "batches"),
    Operation("GET", "/v1/files/{file_id}/content", "A file's content", "batches",
              answers={200: "jsonl"}),
    Operation("POST", "/v1/batches", "Run an uploaded file's requests", "batches",
              CreateBatchRequest),
    Operation("GET", "/v1/batches", "This tenant's batches, newest first", "batches"),
    Operation("GET", "/v1/batches/{batch_id}", "A batch's state", "batches"),
    Operation("POST", "/v1/batches/{batch_id}/cancel", "Cancel a batch", "batches",
              errors=(400, 401, 404, 409)),
    Operation("GET", "/admin/stats", "Cache statistics and deployment health", "admin",
              auth="admin", errors=(401, 403)),
    Operation("POST", "/admin/invalidate", "Remove the entries matching a selector", "admin",
              InvalidateRequest, auth="admin", errors=(400, 401, 403, 413)),
    Operation("POST", "/admin/purge-user", "Remove every entry of one end user", "admin",
              PurgeUserRequest, auth="admin", errors=(400, 401, 403, 413)),
    Operation("GET", "/admin/audit", "The audit log, newest first", "admin", auth="admin",
              query=_AUDIT_QUERY, errors=(400, 401, 403, 503)),
    Operation("GET", "/admin/ledger/summary", "Spend, baseline and savings of a period",
              "admin", auth="admin", query=_PERIOD, errors=(400, 401, 403)),
    Operation("GET", "/admin/ledger/series", "The same per hour or day", "admin",
              auth="admin", query=(*_PERIOD, _BUCKET), errors=(400, 401, 403)),
    Operation("GET", "/health/liveness", "The process answers", "health", auth=None, errors=()),
    Operation("GET", "/health/readiness", "The cache backend answers (503 when not)", "health",
              auth=None, answers={200: "json", 503: "json"}, errors=()),
    Operation("GET", "/metrics", "Prometheus metrics", "health", auth=None,
              answers={200: "text"}, errors=()),
    Operation("GET", "/openapi.json", "This document", "docs", auth=None, errors=()),
    Operation("GET", "/admin/dashboard/latency", "Latency percentiles and errors for the page",
              "admin", auth="admin", errors=(401, 403)),
    Operation("GET", "/dashboard", "The dashboard page (the admin key is asked on the page)",
              "dashboard", auth=None, answers={200: "html"}, errors=()),
    Operation("GET", "/dashboard/dashboard.js", "The dashboard's script", "dashboard",
              auth=None, answers={200: "javascript"}, errors=()),
    Operation("GET", "/dashboard/dashboard.css", "The dashboard's style sheet", "dashboard",
              auth=None, answers={200: "css"}, errors=()),
    Operation("GET", "/docs", "This document as a page", "docs", auth=None,
              answers={200: "html"}, errors=()),
)  # fmt: skip

_CONTENT = {
    "json": {JSON: {"schema": {"type": "object"}}},
    "sse+json": {JSON: {"schema": {"type": "object"}}, "text/event-stream": {"schema": {}}},
    "jsonl": {"application/jsonl": {"schema": {"type": "string"}}},
    "text": {"text/plain": {"schema": {"type": "string"}}},
    "html": {"text/html": {"schema": {"type": "string"}}},
    "javascript": {"text/javascript": {"schema": {"type": "string"}}},
    "css": {"text/css": {"schema": {"type": "string"}}},
}


def _operation(op: Operation, schemas: Mapping[type[BaseModel], Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "summary": op.summary,
        "operationId": op.method.lower() + op.path.translate(_ID_CHARS),
        "tags": [op.tag],
    }
    params = [p for name, p in (("{file_id}", _FILE_ID), ("{batch_id}", _BATCH_ID))
              if name in op.path] + list(op.query)  # fmt: skip
    if params:
        doc["parameters"] = params
    if isinstance(op.body, type):
        doc["requestBody"] = {"required": True, "content": {JSON: {"schema": schemas[op.body]}}}
    elif op.body is not None:
        doc["requestBody"] = {"required": True, "content": dict(op.body)}
    responses: dict[str, Any] = {
        str(status): {"description": "OK" if status < 400 else "unavailable",
                      "content": _CONTENT[kind]}
        for status, kind in (op.answers or {200: "json"}).items()
    }  # fmt: skip
    error = {JSON: {"schema": schemas[ErrorBody]}}
    for status in op.errors:
        responses[str(status)] = {"description": "an OpenAI-style error", "content": error}
    doc["responses"] = responses
    if op.auth is not None:
        doc["security"] = [{"bearer": []}, {}] if op.auth == "key" else [{"bearer": []}]
    return doc


def openapi_document(operations: Iterable[Operation] = OPERATIONS) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``, their bodies' schemas from pydantic."""
    operations = list(operations)
    models = [op.body for op in operations if isinstance(op.body, type)] + [ErrorBody]
    refs, definitions = models_json_schema(
        [(model, "validation") for model in dict.fromkeys(models)], ref_template=REF
    )
    schemas = {model: refs[(model, "validation")] for model in dict.fromkeys(models)}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "thrifty gateway",
            "version": "1",
            "description": "OpenAI-compatible, cached and accounted. Every /v1 route is also "
            "served without the /v1 prefix. Cache control: X-Thrifty-Cache, X-Thrifty-TTL, "
            "X-Thrifty-Namespace headers (or the `thrifty` body field).",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _page(document: Mapping[str, Any]) -> str:
    """The document as a plain HTML page: each operation, and its body's schema."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>thrifty gateway API</title>",
        "<style>body{font:15px system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "code,pre{background:#f4f4f4;padding:.1em .3em}pre{padding:.6em;overflow:auto}"
        ".m{display:inline-block;width:4.5em;font-weight:bold}</style></head><body>",
        f"<h1>{esc(document['info']['title'])}</h1><p>{esc(document['info']['description'])}</p>",
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>",
    ]
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            parts.append(f"<h3><span class='m'>{method.upper()}</span><code>{esc(path)}</code>"
                         f"</h3><p>{esc(op['summary'])}</p>")  # fmt: skip
            body = op.get("requestBody")
            if body is not None:
                shown = orjson.dumps(body["content"], option=orjson.OPT_INDENT_2).decode()
                parts.append(f"<details><summary>request body</summary><pre>{esc(shown)}</pre>"
                             "</details>")  # fmt: skip
            statuses = ", ".join(op["responses"])
            parts.append(f"<p>answers: {esc(statuses)}</p>")
    schemas = orjson.dumps(document["components"]["schemas"], option=orjson.OPT_INDENT_2)
    parts.append(f"<h2>Schemas</h2><pre>{esc(schemas.decode())}</pre></body></html>")
    return "".join(parts)


def docs_routes(operations: Iterable[Operation] = OPERATIONS) -> list[Route]:
    """``GET /openapi.json`` and ``GET /docs``, built once (the document does not change)."""
    document = openapi_document(operations)
    body, page = orjson.dumps(document), _page(document)

    async def openapi_json(request: Request) -> Response:
        return Response(body, media_type=JSON)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    return [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]


__all__ = ["OPERATIONS", "Operation", "docs_routes", "openapi_document"]
