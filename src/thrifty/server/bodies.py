"""Request bodies in, JSON out: size- and depth-capped readers and a plain JSON response.

orjson rather than Starlette's ``JSONResponse`` (json + ensure_ascii): the bodies are chat
completions and this is on every request's path.

Every limit here answers a client's mistake as a 4xx before the body reaches code that could
fail on it: a 2 KB body nested 600 deep once reached the key builder's recursion and came back
as a 500 with a 145 KB traceback in the log; a 50 MB upload was read whole into memory.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive

from thrifty.json_limits import MAX_JSON_DEPTH, json_depth
from thrifty.server.errors import APIError

#: The largest ``POST /v1/files`` upload by default (the OpenAI batch API takes 200 MB files;
#: the gateway reads an upload into memory before writing it, so it defaults to half of that).
MAX_UPLOAD_BYTES = 100 * 1024 * 1024


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json"
    )


def _too_large(max_bytes: int) -> APIError:
    return APIError(413, f"the request body exceeds {max_bytes} bytes", code="body_too_large")


def _too_deep(max_depth: int) -> APIError:
    return APIError(
        400, f"the request body nests deeper than {max_depth} levels", code="json_too_deep"
    )


def _declared_too_large(request: Request, max_bytes: int) -> bool:
    declared = request.headers.get("content-length")
    return bool(declared and declared.isdigit() and int(declared) > max_bytes)


def check_depth(value: Any, raw: bytes, max_depth: int) -> None:
    """Raise 400 when ``value`` (decoded from ``raw``) nests deeper than ``max_depth``.

    A body with no more brackets than the limit cannot nest deeper than it: counting them is
    one C-speed pass, so a usual request never pays for the walk.
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return
    if json_depth(value, max_depth) > max_depth:
        raise _too_deep(max_depth)


async def read_json(request: Request, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The decoded JSON body.

    Raises:
        APIError: 413 past ``max_bytes`` (declared or actual); 400 for malformed JSON or JSON
            nested deeper than ``max_depth``.
        ClientDisconnect: the client went away before sending the whole body (answered 499,
            not counted as an error).
    """
    if _declared_too_large(request, max_bytes):
        raise _too_large(max_bytes)
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > max_bytes:
            raise _too_large(max_bytes)
        parts.append(part)
    raw = b"".join(parts)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = str(exc).lower()
        if "depth" in reason or "recursion" in reason:  # orjson stops at 1024 levels itself
            raise _too_deep(max_depth) from None
        raise APIError(
            400, f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    check_depth(value, raw, max_depth)
    return value


async def read_form(request: Request, max_bytes: int) -> FormData:
    """The multipart (or urlencoded) form of ``request``, refused past ``max_bytes`` in all.

    The cap applies while the body arrives (a client can send a form without declaring its
    length), so an oversized upload is cut off instead of being spooled whole.

    Raises:
        APIError: 413 past ``max_bytes``; 400 for a malformed form.
        ClientDisconnect: the client went away mid-upload.
    """
    if _declared_too_large(request, max_bytes):
        raise _too_large(max_bytes)
    received = 0
    receive: Receive = request.receive

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > max_bytes:
            raise _too_large(max_bytes)
        return message

    capped = Request(request.scope, counted)
    try:
        return await capped.form()
    except (APIError, ClientDisconnect):
        raise
    except Exception as exc:  # starlette's MultiPartException / HTTPException: malformed form
        raise APIError(
            400, f"expected a multipart form with 'file' and 'purpose': {exc}", code="invalid_form"
        ) from None
