"""The gateway's state: config, cache, deployments, limits, keys, prices and metrics.

One :class:`Gateway` lives on ``app.state.gateway``; the route handlers are thin functions over
it. Built from a validated :class:`~thrifty.server.config.GatewayConfig`; everything that can
fail on bad configuration fails here, before the server accepts a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any, NamedTuple

from thrifty.accounting.prices import PriceTable
from thrifty.accounting.tokens import count_messages, count_text, usage_of
from thrifty.cache import Cache, CoalesceSettings, SemanticSettings, SizeLimits
from thrifty.cache.coalesce import lone_process_leases
from thrifty.errors import ConfigError, LimitExceededError
from thrifty.limits import KeyLimits, LimitBackend, Reservation, max_cost_usd, open_limits
from thrifty.providers.base import Provider
from thrifty.server.auth import KeyRing, Principal
from thrifty.server.cascade import build_routes
from thrifty.server.config import GatewayConfig
from thrifty.server.errors import APIError
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.stream_tee import StreamTee
from thrifty.server.upstreams import build_pool, serves

log = logging.getLogger("thrifty.server")
audit = logging.getLogger("thrifty.audit")


class PricedAnswer(NamedTuple):
    """Tokens and dollars of one answer, and the model name it was priced as."""

    tokens_in: int
    tokens_out: int
    cost_usd: float
    model: str


class Gateway:
    """Everything a request needs, built once per worker.

    Args:
        config: the validated configuration.
        source: where it came from (named in configuration errors).
        cache: an already-built cache (tests); by default one is opened from ``config.cache``.
        limits: an already-built limit backend (tests); by default from ``config.limits``.
        lone_process: this is the only gateway process on its cache (``--workers 1``): a SQLite
            cache then skips cross-process coalescing leases, a write transaction per miss.
            Redis and PostgreSQL caches keep them (replicas on other hosts share those).

    Raises:
        ConfigError: naming ``source``, when the cache, pool, prices or limits cannot be built.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        source: str = "<config>",
        cache: Cache | None = None,
        limits: LimitBackend | None = None,
        lone_process: bool = False,
    ) -> None:
        self.config = config
        self.source = source
        try:
            self.prices = PriceTable(config.prices)
            self.pool, self.providers = build_pool(config)
            self.routes = build_routes(config, source)
            settings = config.cache
            self.cache = cache or Cache(
                settings.url,
                namespace=settings.namespace,
                ttl=settings.ttl,
                limits=SizeLimits(settings.max_entries, settings.max_bytes),
                prices=self.prices,
                write_behind=True,  # a miss answers before its store write (overhead)
                semantic=SemanticSettings(settings.semantic_threshold, settings.embedder)
                if settings.semantic
                else False,
                coalesce=CoalesceSettings(
                    shared_leases=lone_process_leases(settings.url) if lone_process else None
                ),
            )
            for namespace in [
                *settings.semantic_off,
                *(k.tenant for k in config.keys if not k.semantic),
            ]:
                self.cache.set_semantic(namespace, False)
            limits_url = config.limits.url
            if limits_url is None and settings.url.startswith(("redis://", "rediss://")):
                limits_url = settings.url
            self.limits = limits or open_limits(limits_url)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        self.keys = KeyRing(
            config.keys, default_tenant=config.cache.namespace, admin_key=config.master_key
        )
        self.metrics = GatewayMetrics([*self.pool.models(), *self.routes])
        self.started = int(time.time())
        self._tasks: set[asyncio.Task[Any]] = set()
        self.streams: dict[str, StreamTee] = {}
        """Upstream streams in flight by cache key, shared by identical streamed requests."""
        self._primary_model = {
            e.model_name: e.litellm_params.model for e in reversed(config.model_list)
        }
        for route in config.routes:  # limits reserve a route's worst case: its strongest model
            self._primary_model[route.name] = self._primary_model[route.chain[-1]]

    # ---------------------------------------------------------------- models
    def require_model(self, model: str, operation: str | None = None) -> None:
        """Raises APIError 404 for an unknown model, 400 when none of its deployments serves
        ``operation``."""
        if model in self.routes:
            if operation not in (None, "completion"):
                raise APIError(
                    400,
                    f"the route model {model!r} does not serve {operation}",
                    param="model",
                    code="unsupported_operation",
                )
            return
        if model not in self.pool:
            raise APIError(
                404,
                f"the model {model!r} does not exist; served: "
                f"{', '.join([*self.pool.models(), *self.routes])}",
                param="model",
                code="model_not_found",
            )
        if operation and not any(serves(d.target, operation) for d in self.pool.deployments(model)):
            raise APIError(
                400,
                f"the model {model!r} does not serve {operation}",
                param="model",
                code="unsupported_operation",
            )

    def priced_model(self, model_name: str, response: Mapping[str, Any] | None = None) -> str:
        """The model name to price an answer by: the upstream's reported model when the price
        table knows it, else the configured deployment's."""
        reported = response.get("model") if isinstance(response, Mapping) else None
        if isinstance(reported, str) and reported in self.prices:
            return reported
        return self._primary_model.get(model_name, model_name)

    # -------------------------------------------------------------- accounting
    @staticmethod
    def prompt_tokens(body: Mapping[str, Any]) -> int:
        """Prompt tokens of a request, counted before sending (for TPM and budgets)."""
        if "messages" in body:
            return count_messages(body["messages"])
        value = body.get("prompt", body.get("input", ""))
        if isinstance(value, list):
            return sum(count_text(v) if isinstance(v, str) else 1 for v in value)
        return count_text(str(value))

    def usage(self, body: Mapping[str, Any], response: Mapping[str, Any]) -> tuple[int, int]:
        """(prompt, completion) tokens of an answer: its ``usage``, else counted."""
        counted = usage_of(response)
        if counted is not None:
            return counted
        out = 0
        for choice in response.get("choices") or []:
            message = choice.get("message") or {}
            out += count_text(str(message.get("content") or choice.get("text") or ""))
        return self.prompt_tokens(body), out

    def cost(self, model: str, tokens_in: int, tokens_out: int) -> float:
        return self.prices.cost(model, tokens_in, tokens_out)

    def price_answer(self, model_name: str, body: Mapping[str, Any],
                     response: Mapping[str, Any]) -> PricedAnswer:
        """What an answer of ``model_name`` to ``body`` cost (or, from the cache, saved)."""
        tokens_in, tokens_out = self.usage(body, response)
        priced = self.priced_model(model_name, response)
        return PricedAnswer(tokens_in, tokens_out, self.cost(priced, tokens_in, tokens_out),
                            priced)

    # ------------------------------------------------------------------ limits
    async def reserve(
        self, principal: Principal, model_name: str, body: Mapping[str, Any]
    ) -> Reservation | None:
        """Take the key's request, prompt tokens and worst-case cost before an upstream call.

        Raises:
            APIError: 429 with OpenAI's ``x-ratelimit-*`` headers when a limit refuses it.
        """
        limits: KeyLimits = principal.limits
        if limits.unlimited:
            return None
        needs_tokens = limits.tpm is not None or limits.max_budget_usd is not None
        tokens = self.prompt_tokens(body) if needs_tokens else 0
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        price = self.prices.get(self._primary_model.get(model_name))
        worst = max_cost_usd(price, tokens, cap) if limits.max_budget_usd is not None else 0.0
        try:
            return await self.limits.reserve(
                principal.key_id, limits, tokens=tokens, cost_usd=worst
            )
        except LimitExceededError as exc:
            self.metrics.rate_limited.labels(exc.limit).inc()
            code = "budget_exceeded" if exc.limit == "budget" else "rate_limit_exceeded"
            raise APIError(
                429,
                str(exc),
                type=("insufficient_quota" if exc.limit == "budget" else "rate_limit_error"),
                code=code,
                headers=exc.headers,
            ) from exc

    async def settle(
        self, reservation: Reservation | None, tokens: int = 0, cost_usd: float = 0.0
    ) -> None:
        if reservation is not None:
            await self.limits.settle(reservation, tokens=tokens, cost_usd=cost_usd)

    async def release(self, reservation: Reservation | None) -> None:
        if reservation is not None:
            await self.limits.release(reservation)

    # --------------------------------------------------------------- lifecycle
    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run bookkeeping after the response (kept referenced; awaited at shutdown)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def ready(self) -> tuple[bool, str]:
        """Readiness: the cache backend answers a ping."""
        try:
            await asyncio.to_thread(self.cache.store.ping)
        except Exception as exc:
            return False, f"cache backend {self.cache.url!r} is unusable: {exc}"
        return True, "ok"

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        providers: list[Provider] = self.providers
        for provider in providers:
            with contextlib.suppress(Exception):
                await provider.aclose()
        with contextlib.suppress(Exception):
            await self.limits.aclose()
        with contextlib.suppress(Exception):
            await self.cache.adrain()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.cache.close)
