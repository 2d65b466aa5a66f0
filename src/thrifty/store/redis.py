"""``redis://host:port/db`` — the exact cache shared by many replicas.

Layout under a prefix (default ``thrifty:``), so ``clear()`` touches only our keys:

- ``e:<key>``   the entry: one string, header JSON + ``\\n`` + payload, with Redis's own expiry
  (``PXAT``), so a hit is a single GET;
- ``m``         hash key → ``[size, index keys…]``, what deleting an entry must undo;
- ``z``         sorted set of keys by creation time (oldest-first eviction), ``x`` by expiry;
- ``bytes``     running byte total; ``i:<field>:<value>`` one set of keys per indexed value;
- ``s:<key>``   the entry's semantic record (not needed on a hit), ``sz`` keys that have one;
- ``c:<namespace>`` counters (hash), ``cns`` the namespaces that have counters;
- ``l:<name>``  leases (``SET NX PX``; released by a compare-and-delete script).

Writes and deletes run as Lua scripts, so the indexes and totals stay consistent when several
processes write at once. Redis expires entries itself; the bookkeeping of an expired entry is
dropped lazily (before eviction, on ``usage()``, on invalidation).

Every wait is bounded (``connect_timeout`` and ``socket_timeout``, half a second each by default,
keyword arguments or URL parameters), so a dead server answers "failed" fast; a connection that
went stale in a restart is retried once at once, so calls work again as soon as Redis is back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

from thrifty.entry import Entry, Selector
from thrifty.errors import BackendUnavailableError, ConfigError
from thrifty.redact import redact_url
from thrifty.store._url import BROADCAST, pop_query, seconds, switch
from thrifty.store.base import Store
from thrifty.store.bus import Bus, RedisBus

log = logging.getLogger("thrifty.store.redis")
#: Timeouts in seconds: keyword argument or URL parameter -> default.
TIMEOUTS = {
    "connect_timeout": 0.5,  # opening a connection
    "socket_timeout": 0.5,  # one command's answer (bulk work is sent in batches of 500)
}
DEFAULT_PREFIX = "thrifty:"
#: Selector field → short name in index keys.
INDEXED = {
    "namespace": "ns",
    "tag": "tag",
    "model": "model",
    "model_version": "ver",
    "user_id": "user",
}

# Shared Lua: drop one entry and everything that points at it. KEYS[1] is the prefix.
_DROP_FN = """
local function drop(p, key)
  local meta = redis.call('HGET', p .. 'm', key)
  if meta then
    local info = cjson.decode(meta)
    redis.call('HDEL', p .. 'm', key)
    redis.call('ZREM', p .. 'z', key)
    redis.call('ZREM', p .. 'x', key)
    redis.call('DECRBY', p .. 'bytes', info[1])
    for i = 2, #info do redis.call('SREM', info[i], key) end
  end
  redis.call('ZREM', p .. 'sz', key)
  redis.call('DEL', p .. 's:' .. key)
  return redis.call('DEL', p .. 'e:' .. key)
end
local function purge(p, now, limit)
  local gone = redis.call('ZRANGEBYSCORE', p .. 'x', '-inf', now, 'LIMIT', 0, limit)
  for _, key in ipairs(gone) do drop(p, key) end
  return #gone
end
"""

# ARGV: key, blob, pxat (0 = none), created_at, expires_at ('' = none), size, meta,
#       max_entries (-1 = none), max_bytes (-1 = none), now, semantic ('' = none), index keys…
_SET = (
    _DROP_FN
    + """
local p = KEYS[1]
local key, size = ARGV[1], tonumber(ARGV[6])
drop(p, key)
if ARGV[3] ~= '0' then
  redis.call('SET', p .. 'e:' .. key, ARGV[2], 'PXAT', ARGV[3])
  redis.call('ZADD', p .. 'x', ARGV[5], key)
else
  redis.call('SET', p .. 'e:' .. key, ARGV[2])
end
if ARGV[11] ~= '' then
  if ARGV[3] ~= '0' then
    redis.call('SET', p .. 's:' .. key, ARGV[11], 'PXAT', ARGV[3])
  else
    redis.call('SET', p .. 's:' .. key, ARGV[11])
  end
  redis.call('ZADD', p .. 'sz', ARGV[4], key)
end
redis.call('HSET', p .. 'm', key, ARGV[7])
redis.call('ZADD', p .. 'z', ARGV[4], key)
redis.call('INCRBY', p .. 'bytes', size)
for i = 12, #ARGV do redis.call('SADD', ARGV[i], key) end
local max_entries, max_bytes = tonumber(ARGV[8]), tonumber(ARGV[9])
local function over()
  return (max_entries >= 0 and redis.call('ZCARD', p .. 'z') > max_entries)
    or (max_bytes >= 0 and tonumber(redis.call('GET', p .. 'bytes') or '0') > max_bytes)
end
purge(p, ARGV[10], 64)
if over() then purge(p, ARGV[10], 100000) end
while over() do
  local oldest = redis.call('ZRANGE', p .. 'z', 0, 0)
  if #oldest == 0 then break end
  drop(p, oldest[1])
end
return 1
"""
)

# ARGV: keys to drop; returns how many live entries were removed.
_DROP_MANY = (
    _DROP_FN
    + """
local n = 0
for _, key in ipairs(ARGV) do n = n + drop(KEYS[1], key) end
return n
"""
)

_PURGE = _DROP_FN + "\nreturn purge(KEYS[1], ARGV[1], 100000)\n"

_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_HEADER_FIELDS = (
    "namespace", "user_id", "tags", "model", "model_version", "created_at", "expires_at",
    "tokens_in", "tokens_out", "cost_usd", "latency_ms",
)  # fmt: skip


def split_url(url: str, prefix: str | None) -> tuple[str, str, dict[str, str]]:
    """(url for redis-py, key prefix, our other URL options): ``?prefix=`` and the
    :data:`TIMEOUTS` (and redis-py's ``socket_connect_timeout``) are ours, the rest goes to
    redis-py."""
    rest, ours = pop_query(url, {"prefix", "socket_connect_timeout", BROADCAST, *TIMEOUTS})
    if "socket_connect_timeout" in ours:  # redis-py's name for it
        ours.setdefault("connect_timeout", ours.pop("socket_connect_timeout"))
    chosen = prefix if prefix is not None else ours.pop("prefix", DEFAULT_PREFIX)
    if not chosen:
        raise ConfigError("the Redis key prefix must not be empty (clear() would touch all keys)")
    return rest, chosen, ours


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStore(Store):
    """``redis://`` — one GET per hit, native expiry, indexes for invalidation."""

    schemes = ("redis", "rediss")
    blocking = True
    shared = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        prefix: str | None = None,
        connect_timeout: float | None = None,
        socket_timeout: float | None = None,
        **redis_options: Any,
    ) -> None:
        super().__init__(max_entries=max_entries, max_bytes=max_bytes)
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise BackendUnavailableError(
                url, "redis-py is not installed; pip install 'thrifty[redis]'"
            ) from exc
        self.url = url
        self.outage_errors = (
            redis.ConnectionError,  # refused, reset, closed; also "loading the dataset"
            redis.TimeoutError,
            redis.ReadOnlyError,  # a replica during a failover
            OSError,
        )
        client_url, self.prefix, query = split_url(url, prefix)
        self._client_url = client_url
        self._broadcast = switch(BROADCAST, query)
        given = {"connect_timeout": connect_timeout, "socket_timeout": socket_timeout}
        self.timeouts = {k: seconds(k, given[k], query, v) for k, v in TIMEOUTS.items()}
        self._entry_prefix = self.prefix + "e:"
        from redis.backoff import ConstantBackoff
        from redis.retry import Retry

        # One quick retry when a pooled connection went stale in a Redis restart, not redis-py's
        # default of several backed-off ones, and none after a timeout (that would double it):
        # a dead cache must fail fast, then fail open.
        redis_options.setdefault(
            "retry", Retry(ConstantBackoff(0.01), 1, supported_errors=(redis.ConnectionError,))
        )
        try:
            self._client = redis.Redis.from_url(
                client_url,
                socket_connect_timeout=self.timeouts["connect_timeout"],
                socket_timeout=self.timeouts["socket_timeout"],
                **redis_options,
            )
            self._client.ping()
        except (redis.RedisError, OSError, ValueError) as exc:
            raise BackendUnavailableError(url, f"{type(exc).__name__}: {exc}") from exc
        # redis-py types replies as ``bytes | str`` (decode_responses is a runtime option); ours
        # are bytes. Typed once here, so the hit path pays no cast.
        self._get_blob = cast(Callable[[str], bytes | None], self._client.get)
        self._set = self._client.register_script(_SET)
        self._drop_many = self._client.register_script(_DROP_MANY)
        self._purge = self._client.register_script(_PURGE)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._release = self._client.register_script(_RELEASE)

    # ---------------------------------------------------------------- hit path
    def get(self, key: str) -> Entry | None:
        blob = self._get_blob(self._entry_prefix + key)
        return None if blob is None else self._parse(key, blob)

    def _parse(self, key: str, blob: bytes) -> Entry | None:
        try:
            cut = blob.index(b"\n")
            h = json.loads(blob[:cut])
            expires_at = h[6]
            if expires_at is not None and expires_at <= time.time():
                return None  # Redis drops it within a millisecond; the bookkeeping goes lazily
            return Entry(
                key, blob[cut + 1 :], h[0], h[1], tuple(h[2]), h[3], h[4], h[5], expires_at,
                h[7], h[8], h[9], h[10],
            )  # fmt: skip
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            log.warning("dropping unreadable Redis cache record %s: %s", key[:16], exc)
            self._drop([key])
            return None

    # ------------------------------------------------------------------ writes
    def _index_keys(self, entry: Entry) -> list[str]:
        keys = [f"{self.prefix}i:ns:{entry.namespace}"]
        keys += [f"{self.prefix}i:tag:{tag}" for tag in dict.fromkeys(entry.tags)]
        for field in ("model", "model_version", "user_id"):
            value = getattr(entry, field)
            if value is not None:
                keys.append(f"{self.prefix}i:{INDEXED[field]}:{value}")
        return keys

    def set(self, entry: Entry) -> None:
        header = json.dumps(
            [getattr(entry, name) for name in _HEADER_FIELDS], separators=(",", ":")
        ).encode()
        index_keys = self._index_keys(entry)
        expires = entry.expires_at
        args: list[Any] = [
            entry.key,
            header + b"\n" + entry.value,
            0 if expires is None else max(1, int(expires * 1000)),
            repr(entry.created_at),
            "" if expires is None else repr(expires),
            entry.size,
            json.dumps([entry.size, *index_keys]),
            -1 if self.max_entries is None else self.max_entries,
            -1 if self.max_bytes is None else self.max_bytes,
            repr(time.time()),
            getattr(entry, "semantic", None) or b"",
            *index_keys,
        ]
        self._set(keys=[self.prefix], args=args)

    def _drop(self, keys: Iterable[str | bytes]) -> int:
        removed = 0
        batch: list[str | bytes] = []
        for key in keys:
            batch.append(key)
            if len(batch) == 500:
                removed += int(self._drop_many(keys=[self.prefix], args=batch))
                batch = []
        if batch:
            removed += int(self._drop_many(keys=[self.prefix], args=batch))
        return removed

    def delete(self, key: str) -> bool:
        return self._drop([key]) > 0

    def invalidate(self, selector: Selector) -> int:
        sets = [
            f"{self.prefix}i:{short}:{getattr(selector, field)}"
            for field, short in INDEXED.items()
            if getattr(selector, field) is not None
        ]
        if not sets:
            return 0
        members = self._client.sinter(sets) if len(sets) > 1 else self._client.smembers(sets[0])
        return self._drop(members)

    def clear(self) -> None:
        pattern = _glob_escape(self.prefix) + "*"
        batch: list[bytes] = []
        for name in self._client.scan_iter(match=pattern, count=1000):
            batch.append(name)
            if len(batch) == 1000:
                self._client.unlink(*batch)
                batch = []
        if batch:
            self._client.unlink(*batch)

    # ------------------------------------------------------------- reporting
    def usage(self, namespace: str | None = None) -> tuple[int, int]:
        self._purge(keys=[self.prefix], args=[repr(time.time())])
        if namespace is None:
            pipe = self._client.pipeline(transaction=True)
            pipe.zcard(self.prefix + "z")
            pipe.get(self.prefix + "bytes")
            entries, size = pipe.execute()
            return int(entries), int(size or 0)
        keys = list(self._client.smembers(f"{self.prefix}i:ns:{namespace}"))
        total = 0
        count = 0
        for start in range(0, len(keys), 1000):
            for meta in self._client.hmget(self.prefix + "m", keys[start : start + 1000]):
                if meta is not None:
                    count += 1
                    total += int(json.loads(meta)[0])
        return count, total

    def add_counters(self, namespace: str, counters: Mapping[str, float]) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.sadd(self.prefix + "cns", namespace)
        for name, value in counters.items():
            pipe.hincrbyfloat(f"{self.prefix}c:{namespace}", name, float(value))
        pipe.execute()

    def read_counters(self, namespace: str | None = None) -> dict[str, float]:
        if namespace is None:
            members = cast(set[bytes], self._client.smembers(self.prefix + "cns"))
            names = sorted(n.decode() for n in members)
        else:
            names = [namespace]
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(f"{self.prefix}c:{name}")
        out: dict[str, float] = {}
        for bucket in pipe.execute():
            for field, value in bucket.items():
                out[field.decode()] = out.get(field.decode(), 0.0) + float(value)
        return out

    def iter_entries(
        self, namespace: str | None = None, *, since: float | None = None
    ) -> Iterator[Entry]:
        low = "-inf" if since is None else repr(since)
        listed = cast(list[bytes], self._client.zrangebyscore(self.prefix + "sz", low, "+inf"))
        keys = [k.decode() for k in listed]
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            pipe = self._client.pipeline(transaction=False)
            pipe.mget([self._entry_prefix + k for k in batch])
            pipe.mget([f"{self.prefix}s:{k}" for k in batch])
            blobs, records = pipe.execute()
            for key, blob, record in zip(batch, blobs, records, strict=True):
                if blob is None or record is None:
                    continue  # expired or deleted since the listing
                entry = self._parse(key, blob)
                if entry is not None and (namespace is None or entry.namespace == namespace):
                    entry.semantic = record
                    yield entry

    def iter_keys(self, namespace: str | None = None) -> Iterator[str]:
        if namespace is None:
            names = cast(list[bytes], self._client.zrange(self.prefix + "z", 0, -1))
        else:
            names = list(cast(set[bytes], self._client.smembers(f"{self.prefix}i:ns:{namespace}")))
        for start in range(0, len(names), 500):  # only the live ones (Redis expires entries)
            batch = names[start : start + 500]
            found = self._client.exists(*[self._entry_prefix + k.decode() for k in batch])
            if found == len(batch):
                yield from (k.decode() for k in batch)
                continue
            for name in batch:
                if self._client.exists(self._entry_prefix + name.decode()):
                    yield name.decode()

    # ----------------------------------------------------------------- leases
    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        ttl_ms = max(1, int(ttl * 1000))
        return bool(self._acquire(keys=[f"{self.prefix}l:{name}"], args=[holder, ttl_ms]))

    def release_lease(self, name: str, holder: str) -> None:
        self._release(keys=[f"{self.prefix}l:{name}"], args=[holder])

    # -------------------------------------------------------------- lifecycle
    def ping(self) -> None:
        self._client.ping()

    def reconnect(self) -> None:
        # Idle connections from before an outage are dead: drop them (those in use stay).
        self._client.connection_pool.disconnect(inuse_connections=False)

    def bus(self) -> Bus | None:
        """``<prefix>drops`` on this Redis: stores with one prefix share one channel."""
        if not self._broadcast:
            return None
        return RedisBus(self._client_url, self.prefix + "drops", self.timeouts["connect_timeout"])

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisStore({redact_url(self.url)!r}, prefix={self.prefix!r})"
