"""``redis://``: the audit log as a Redis stream beside the cache's keys.

A stream is Redis's own append-only log: XADD gives each record an increasing id from the
server's clock, shared by every replica, and nothing in thrifty trims it. The stream's key sits
*beside* the store's prefix, not under it (prefix ``thrifty:`` -> ``thrifty.audit``): the
store's ``clear()`` deletes every key under its prefix, and clearing a cache must not erase the
record that it was cleared. Durability is Redis's (AOF or snapshots as configured).
"""

from __future__ import annotations

from typing import Any, cast

from thrifty.audit.base import AuditLog, AuditRecord, action_matches, dumps
from thrifty.store.redis import split_url

#: The stream's key: the store's prefix without its trailing ``:``, then this.
STREAM_SUFFIX = ".audit"
#: Records fetched per page while filtering by action.
PAGE = 200


class RedisAuditLog(AuditLog):
    """The audit stream under the key prefix a cache URL names."""

    def __init__(self, url: str, *, prefix: str | None = None) -> None:
        super().__init__()
        import redis

        client_url, self.prefix, _ = split_url(url, prefix)
        self.key = self.prefix.rstrip(":") + STREAM_SUFFIX
        self._client = redis.Redis.from_url(
            client_url, socket_connect_timeout=2.0, socket_timeout=5.0
        )

    def _append(self, record: AuditRecord) -> str:
        fields = {
            "at": repr(record.at),
            "actor": record.actor,
            "action": str(record.action),
            "target": dumps(record.target),
            "result": str(record.result),
            "detail": dumps(record.detail),
        }
        ident = self._client.xadd(self.key, cast(Any, fields))
        return ident.decode() if isinstance(ident, bytes) else str(ident)

    def _read(self, since: float | None, action: str | None, limit: int) -> list[AuditRecord]:
        # stream ids are milliseconds since the epoch, 0 to 2**64 - 1
        low = "-" if since is None or since <= 0 else str(min(int(since * 1000), 2**64 - 1))
        found: list[AuditRecord] = []
        high = "+"
        while len(found) < limit:
            page = cast(list[Any], self._client.xrevrange(self.key, high, low, count=PAGE))
            for ident, raw in page:
                data = {k.decode(): v.decode() for k, v in raw.items()}
                record = AuditRecord.from_row(
                    ident.decode(),
                    float(data["at"]),
                    data["actor"],
                    data["action"],
                    data["target"],
                    data["result"],
                    data["detail"],
                )
                if (since is None or record.at >= since) and action_matches(record.action, action):
                    found.append(record)
            if len(page) < PAGE:
                break
            high = "(" + page[-1][0].decode()  # exclusive: the next page starts below it
        return found[:limit]

    def drop(self) -> None:
        """Delete the stream (tests that made a prefix of their own)."""
        self._client.delete(self.key)

    def close(self) -> None:
        self._client.close()
