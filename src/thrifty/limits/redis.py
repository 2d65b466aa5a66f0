"""Limits counted in Redis, shared by every gateway replica; each step is one atomic Lua script.

Per key (the ``{…}`` hash tag keeps a key's three Redis keys on one cluster slot):

- ``thrifty:limits:{key}:s`` a hash: ``rq``/``rq_at`` and ``tk``/``tk_at`` (bucket levels and
  when they were measured), ``spent`` (dollars);
- ``thrifty:limits:{key}:r`` a hash of open reservations, id → dollars;
- ``thrifty:limits:{key}:e`` a sorted set of the same ids by the time they lapse.

Time comes from the Redis server (``TIME``), so replicas with skewed clocks agree.
"""

from __future__ import annotations

import uuid
from typing import Any

from thrifty.limits.base import (
    BUDGET_EPSILON_USD,
    RESERVATION_TTL_SECONDS,
    KeyLimits,
    LimitBackend,
    LimitState,
    Reservation,
    refusal,
    refusal_detail,
)
from thrifty.limits.memory import full_in
from thrifty.store._url import pop_query, seconds

#: Connections to Redis per backend, and the seconds a call waits for one when all are busy
#: (past that the request is let through: fail-open).
POOL_MAX = 16
#: Seconds a Redis call may take before the request is let through (``?timeout=`` in the URL).
DEFAULT_TIMEOUT_S = 0.5
POOL_WAIT_S = 2.0
#: Seconds an idle key's bucket state is kept when it has no budget (buckets are full again
#: after a minute, so nothing is lost).
IDLE_BUCKET_TTL = 120

# Shared prologue: the clock, lapsed reservations dropped, bucket levels refilled.
# ARGV[1] rpm, ARGV[2] tpm, ARGV[3] budget (-1: none).
_PROLOGUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
if #lapsed > 0 then
  redis.call('HDEL', KEYS[2], unpack(lapsed))
  redis.call('ZREM', KEYS[3], unpack(lapsed))
end
local reserved = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do reserved = reserved + tonumber(v) end
local s = redis.call('HMGET', KEYS[1], 'rq', 'rq_at', 'tk', 'tk_at', 'spent')
local spent = tonumber(s[5]) or 0
local function level(value, at, capacity)
  value = tonumber(value)
  if value == nil then return capacity end
  return math.min(capacity, value + (now - tonumber(at)) * capacity / 60)
end
local rq = -1
local tk = -1
if rpm >= 0 then rq = level(s[1], s[2], rpm) end
if tpm >= 0 then tk = level(s[3], s[4], tpm) end
"""

# ARGV[4] prompt tokens, ARGV[5] dollars to reserve, ARGV[6] reservation id, ARGV[7] its ttl,
# ARGV[8] budget epsilon. Returns {verdict, rq, tk, spent, reserved}.
_RESERVE = (
    _PROLOGUE
    + """
local tokens = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local verdict = 'ok'
if rpm >= 0 and rq < 1 then
  verdict = 'requests'
elseif tpm >= 0 and tokens > tpm then
  verdict = 'too_large'
elseif tpm >= 0 and tk < tokens then
  verdict = 'tokens'
end
local ceiling = budget + tonumber(ARGV[8])
if verdict == 'ok' and budget >= 0 and (spent >= budget or spent + reserved + cost > ceiling) then
  verdict = 'budget'
end
if verdict == 'ok' then
  if rpm >= 0 then
    rq = rq - 1
    redis.call('HSET', KEYS[1], 'rq', tostring(rq), 'rq_at', tostring(now))
  end
  if tpm >= 0 then
    tk = tk - tokens
    redis.call('HSET', KEYS[1], 'tk', tostring(tk), 'tk_at', tostring(now))
  end
  if cost > 0 then
    local ttl = tonumber(ARGV[7])
    redis.call('HSET', KEYS[2], ARGV[6], ARGV[5])
    redis.call('ZADD', KEYS[3], now + ttl, ARGV[6])
    redis.call('EXPIRE', KEYS[2], math.ceil(ttl) + 60)
    redis.call('EXPIRE', KEYS[3], math.ceil(ttl) + 60)
    reserved = reserved + cost
  end
  if budget >= 0 then
    redis.call('PERSIST', KEYS[1])
  elseif redis.call('HEXISTS', KEYS[1], 'spent') == 0 then
    redis.call('EXPIRE', KEYS[1], IDLE_BUCKET_TTL)
  end
end
return {verdict, tostring(rq), tostring(tk), tostring(spent), tostring(reserved)}
""".replace("IDLE_BUCKET_TTL", str(IDLE_BUCKET_TTL))
)

# ARGV[4] reservation id, ARGV[5] extra tokens to charge (may be negative), ARGV[6] dollars spent.
_SETTLE = (
    _PROLOGUE
    + """
redis.call('HDEL', KEYS[2], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[4])
local cost = tonumber(ARGV[6])
if cost > 0 then
  redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[6])
  redis.call('PERSIST', KEYS[1])
end
local extra = tonumber(ARGV[5])
if tpm >= 0 and extra ~= 0 then
  redis.call('HSET', KEYS[1], 'tk', tostring(tk - extra), 'tk_at', tostring(now))
end
return 1
"""
)

# Returns {rq, tk, spent, reserved}; changes nothing but lapsed reservations.
_STATE = (
    _PROLOGUE
    + """
return {tostring(rq), tostring(tk), tostring(spent), tostring(reserved)}
"""
)


def _limit_args(limits: KeyLimits) -> list[Any]:
    return [
        -1 if limits.rpm is None else limits.rpm,
        -1 if limits.tpm is None else limits.tpm,
        -1 if limits.max_budget_usd is None else repr(float(limits.max_budget_usd)),
    ]


def _state(limits: KeyLimits, rq: float, tk: float, spent: float, reserved: float) -> LimitState:
    return LimitState(
        limit_requests=limits.rpm,
        remaining_requests=None if limits.rpm is None else rq,
        reset_requests=None if limits.rpm is None else full_in(rq, limits.rpm),
        limit_tokens=limits.tpm,
        remaining_tokens=None if limits.tpm is None else tk,
        reset_tokens=None if limits.tpm is None else full_in(tk, limits.tpm),
        max_budget_usd=limits.max_budget_usd,
        spent_usd=spent,
        reserved_usd=reserved,
    )


def _retry_after(
    verdict: str, limits: KeyLimits, rq: float, tk: float, tokens: int
) -> float | None:
    if verdict == "requests" and limits.rpm:
        return (1 - rq) * 60.0 / limits.rpm
    if verdict == "tokens" and limits.tpm:
        return (tokens - tk) * 60.0 / limits.tpm
    return None


class RedisLimitBackend(LimitBackend):
    """Counters in Redis, checked and taken atomically by Lua scripts.

    Args:
        url: ``redis://host:port/db`` (ignored when ``client`` is given).
        client: an existing ``redis.asyncio.Redis``.
        prefix: the prefix of every Redis key.
        timeout: seconds a Redis call may take before the request is let through (fail-open);
            also ``?timeout=`` in the URL (default 0.5).
        reservation_ttl: seconds after which an unsettled reservation stops counting.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: Any = None,
        prefix: str = "thrifty:limits",
        timeout: float | None = None,
        reservation_ttl: float = RESERVATION_TTL_SECONDS,
    ) -> None:
        import redis.asyncio as redis_asyncio

        # the cache's own options when the limits share its URL: redis-py refuses them
        url, query = pop_query(url, ("timeout", "prefix", "breaker_failures", "breaker_cooldown"))
        timeout = seconds("timeout", timeout, query, DEFAULT_TIMEOUT_S)
        self.name = url if client is None else "redis (a given client)"

        self._owns_client = client is None
        if client is None:
            # A burst past the pool's size waits for a free connection: redis-py's default
            # pool refuses at once ("Too many connections"), which would fail open and let a
            # burst of more than 100 concurrent requests past the budget unchecked.
            pool = redis_asyncio.BlockingConnectionPool.from_url(
                url,
                max_connections=POOL_MAX,
                timeout=POOL_WAIT_S,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
            client = redis_asyncio.Redis.from_pool(pool)  # closed with the client
        self._client = client
        self._prefix = prefix
        self._reservation_ttl = reservation_ttl
        self._reserve_script = self._client.register_script(_RESERVE)
        self._settle_script = self._client.register_script(_SETTLE)
        self._state_script = self._client.register_script(_STATE)

    def _keys(self, key: str) -> list[str]:
        base = f"{self._prefix}:{{{key}}}"
        return [f"{base}:s", f"{base}:r", f"{base}:e"]

    async def _reserve(
        self, key: str, limits: KeyLimits, tokens: int, cost_usd: float
    ) -> Reservation:
        rid = uuid.uuid4().hex if cost_usd > 0 else ""
        raw = await self._reserve_script(
            keys=self._keys(key),
            args=[
                *_limit_args(limits),
                tokens,
                repr(float(cost_usd)),
                rid or "-",
                self._reservation_ttl,
                repr(BUDGET_EPSILON_USD),
            ],
        )
        verdict = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
        rq, tk, spent, reserved = (float(v) for v in raw[1:])
        state = _state(limits, rq, tk, spent, reserved)
        if verdict != "ok":
            retry_after = _retry_after(verdict, limits, rq, tk, tokens)
            detail = refusal_detail(verdict, limits, tokens, state)
            raise refusal(verdict, state, retry_after, detail)
        return Reservation(key, rid, limits, tokens, cost_usd, state)

    async def _settle(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        await self._settle_script(
            keys=self._keys(reservation.key),
            args=[
                *_limit_args(reservation.limits),
                reservation.id or "-",
                tokens - reservation.tokens,
                repr(float(cost_usd)),
            ],
        )

    async def _state(self, key: str, limits: KeyLimits) -> LimitState:
        raw = await self._state_script(keys=self._keys(key), args=_limit_args(limits))
        rq, tk, spent, reserved = (float(v) for v in raw)
        return _state(limits, rq, tk, spent, reserved)

    async def _ping(self) -> None:
        await self._client.ping()

    async def reset(self, key: str) -> None:
        await self._client.delete(*self._keys(key))

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
