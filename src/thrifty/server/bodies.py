"""JSON in and out of the gateway: a size-capped body reader and a plain JSON response.

orjson rather than Starlette's ``JSONResponse`` (json + ensure_ascii): the bodies are chat
completions and this is on every request's path.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from thrifty.server.errors import APIError


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json"
    )


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
            raise APIError(
                413, f"the request body exceeds {max_bytes} bytes", code="body_too_large"
            )
        parts.append(part)
    try:
        return orjson.loads(b"".join(parts))
    except orjson.JSONDecodeError as exc:
        raise APIError(
            400, f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
