"""The query of ``GET /admin/audit``, checked: bad values are a 400 naming the parameter."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

from thrifty.audit.base import MAX_READ
from thrifty.server.errors import APIError

DEFAULT_LIMIT = 100


def parse_since(text: str) -> float:
    """Epoch seconds, or an ISO 8601 time (UTC when it names no zone).

    Raises:
        APIError: 400 when it is neither.
    """
    try:
        value = float(text)
    except ValueError:
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise APIError(400, f"since must be epoch seconds or an ISO 8601 time, got {text!r}",
                           param="since", code="invalid_since") from None  # fmt: skip
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    if not math.isfinite(value):
        raise APIError(400, "since must be a finite time", param="since", code="invalid_since")
    return value


def audit_query(params: Mapping[str, str]) -> tuple[float | None, str | None, int]:
    """(since, action, limit) from the query string.

    Raises:
        APIError: 400 for a bad ``since`` or ``limit``, or an over-long ``action``.
    """
    since = parse_since(params["since"]) if params.get("since") else None
    action = params.get("action") or None
    if action is not None and len(action) > 64:
        raise APIError(400, "action is at most 64 characters", param="action",
                       code="invalid_action")  # fmt: skip
    raw = params.get("limit") or str(DEFAULT_LIMIT)
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_READ:
        raise APIError(400, f"limit must be a whole number from 1 to {MAX_READ}, got {raw!r}",
                       param="limit", code="invalid_limit")  # fmt: skip
    return since, action, limit
