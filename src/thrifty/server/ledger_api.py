"""``GET /admin/ledger/summary`` and ``GET /admin/ledger/series``: the ledger's read API over
HTTP, behind the admin key.

Both flush the rows still queued first, so what they report includes every request answered
before the call (no counter that reaches a reader minutes late). Periods are ``since`` and
``until`` as epoch seconds or ISO dates (``2026-12-03`` or ``2026-12-03T10:00:00Z``), UTC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from thrifty.ledger import LedgerWriter, parse_time
from thrifty.server.auth import KeyRing
from thrifty.server.bodies import json_response
from thrifty.server.context import RequestContext
from thrifty.server.errors import APIError


def _time(value: str | None, name: str) -> float | None:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise APIError(400, f"{name} must be epoch seconds or an ISO date, got {value!r}",
                       param=name, code="invalid_time") from exc  # fmt: skip


def ledger_handlers(
    keys: KeyRing, writer: LedgerWriter | None
) -> dict[str, tuple[str, str, Callable[[RequestContext], Any]]]:
    """The ledger's admin endpoints: path -> (method, metrics label, handler)."""

    def period(ctx: RequestContext) -> dict[str, Any]:
        keys.require_admin(ctx.request.headers)
        if writer is None:
            raise APIError(404, "this gateway keeps no ledger (ledger.enabled is false)",
                           code="ledger_off")  # fmt: skip
        query = ctx.request.query_params
        return {
            "since": _time(query.get("since"), "since"),
            "until": _time(query.get("until"), "until"),
            "tenant": query.get("tenant") or None,
        }

    async def summary(ctx: RequestContext) -> Response:
        scope = period(ctx)
        assert writer is not None

        def read() -> dict[str, Any]:
            writer.flush()
            return writer.ledger.summary(**scope).as_dict()

        return json_response({**scope, **await asyncio.to_thread(read)})

    async def series(ctx: RequestContext) -> Response:
        scope = period(ctx)
        assert writer is not None
        bucket = ctx.request.query_params.get("bucket", "day")
        if bucket not in ("hour", "day"):
            raise APIError(400, f"bucket must be hour or day, got {bucket!r}", param="bucket",
                           code="invalid_bucket")  # fmt: skip

        def read() -> list[dict[str, Any]]:
            writer.flush()
            points = writer.ledger.series(bucket=bucket, **scope)  # type: ignore[arg-type]
            return [p.as_dict() for p in points]

        return json_response({**scope, "bucket": bucket, "points": await asyncio.to_thread(read)})

    return {
        "/admin/ledger/summary": ("GET", "admin", summary),
        "/admin/ledger/series": ("GET", "admin", series),
    }
