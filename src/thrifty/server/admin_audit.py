"""The query of ``GET /admin/audit``, checked: bad values are a 400 naming the parameter."""

from __future__ import annotations

import re
from collections.abc import Mapping

from thrifty.audit.base import MAX_READ, parse_time
from thrifty.server.errors import APIError

DEFAULT_LIMIT = 100
#: What an action filter may hold (the actions' own alphabet).
ACTION = re.compile(r"[a-z_.]{1,64}")


def parse_since(text: str) -> float:
    """``?since=``: epoch seconds or an ISO 8601 time.

    Raises:
        APIError: 400 when it is neither.
    """
    try:
        return parse_time(text)
    except ValueError as exc:
        raise APIError(400, f"since: {exc}", param="since", code="invalid_since") from None


def audit_query(params: Mapping[str, str]) -> tuple[float | None, str | None, int]:
    """(since, action, limit) from the query string.

    Raises:
        APIError: 400 for a bad ``since`` or ``limit``, or an over-long ``action``.
    """
    since = parse_since(params["since"]) if params.get("since") else None
    action = params.get("action") or None
    if action is not None and not ACTION.fullmatch(action):
        raise APIError(400, "action is an action name such as cache.purge_user, or a prefix "
                       "ending in '.' (at most 64 of a-z, _ and .)", param="action",
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
