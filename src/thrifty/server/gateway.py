"""The gateway's parts, built once per worker from its configuration, and their lifecycle.

:class:`Gateway` is the composition root: it builds the cache, the deployment pool, the route
models, the limiter, the pricer, the key ring and the metrics, and ``server/chain.py`` hands each
request stage the few of them it needs. No stage ever receives the gateway itself. Everything
that can fail on bad configuration fails here, before the server accepts a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from thrifty.audit import AuditAction, AuditLog, AuditRecord, open_audit
from thrifty.cache import (
    Cache,
    CoalesceSettings,
    ProtectSettings,
    SizeLimits,
)
from thrifty.cache.coalesce import lone_process_leases
from thrifty.errors import ConfigError
from thrifty.ledger import open_ledger_writer
from thrifty.limits import KeyLimits, LimitBackend, open_limits
from thrifty.redact import redact_url
from thrifty.safety.purge import PurgeHook
from thrifty.server.accounting import Accountant
from thrifty.server.auth import KeyRing
from thrifty.server.caching import Streams
from thrifty.server.cascade import build_routes
from thrifty.server.catalog import ModelCatalog
from thrifty.server.config import GatewayConfig, pii_by_namespace
from thrifty.server.limiter import KeyLimiter
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.pricing import Pricer
from thrifty.server.readiness import backends, summary
from thrifty.server.semantic_policies import apply_policies, semantic_settings
from thrifty.server.tasks import BackgroundTasks
from thrifty.server.upstreams import Connect, build_pool
from thrifty.store.breaker import observe_errors

log = logging.getLogger("thrifty.server")


class Gateway:
    """Everything a worker's requests share.

    Args:
        config: the validated configuration.
        source: where it came from (named in configuration errors).
        cache: an already-built cache (tests); by default one is opened from ``config.cache``.
        limits: an already-built limit backend (tests); by default from ``config.limits``.
        lone_process: this is the only gateway process on its cache (``--workers 1``): a SQLite
            cache then skips cross-process coalescing leases, a write transaction per miss.
            Redis and PostgreSQL caches keep them (replicas on other hosts share those).
        connect: builds a deployment's provider instead of the configured kind (tests: an
            in-process FAKE upstream); returning None builds the configured one.

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
        connect: Connect | None = None,
    ) -> None:
        self.config = config
        self.source = source
        try:
            self.pricer = Pricer(config)
            self.prices = self.pricer.prices
            self.pool, self.providers = build_pool(config, connect)
            self.metrics = GatewayMetrics(
                [*self.pool.models(), *(route.name for route in config.routes)]
            )
            self.routes = build_routes(
                config, source, pool=self.pool, metrics=self.metrics, pricer=self.pricer
            )
            settings = config.cache
            self.cache = cache or Cache(
                settings.url,
                namespace=settings.namespace,
                ttl=settings.ttl,
                namespace_ttl=settings.namespace_ttl,
                limits=SizeLimits(settings.max_entries, settings.max_bytes),
                prices=self.prices,
                write_behind=True,  # a miss answers before its store write (overhead)
                semantic=semantic_settings(settings),
                coalesce=CoalesceSettings(
                    lease_ttl=settings.lease_ttl,
                    shared_leases=lone_process_leases(settings.url) if lone_process else None,
                ),
                protect=ProtectSettings(
                    settings.pii,
                    settings.pii_custom,
                    settings.encryption_key,
                    tuple(settings.old_encryption_keys),
                    pii_by_namespace(config),
                ),
            )
            for namespace in [
                *settings.semantic_off,
                *(k.tenant for k in config.keys if not k.semantic),
            ]:
                self.cache.set_semantic(namespace, False)
            apply_policies(self.cache, config)
            limits_url = config.limits.url
            if limits_url is None and settings.url.startswith(("redis://", "rediss://")):
                limits_url = settings.url
            backend = limits or open_limits(limits_url)
            ledger = config.ledger
            self.ledger = (
                open_ledger_writer(
                    ledger.url, cache_url=self.cache.url, retention_days=ledger.retention_days
                )
                if ledger.enabled
                else None
            )
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        tenants = {
            name: KeyLimits(max_budget_usd=b.max_budget_usd, budget_period=b.budget_period)
            for name, b in config.limits.tenants.items()
        }
        self.limiter = KeyLimiter(backend, self.pricer, self.metrics, tenants)
        self._count_backend_errors(backend)
        self.accountant = Accountant(self.pricer, self.limiter, self.metrics, self.ledger)
        self.keys = KeyRing(
            config.keys, default_tenant=config.cache.namespace, admin_key=config.master_key
        )
        self.catalog = ModelCatalog(self.pool, self.routes)
        self.started = int(time.time())
        self.tasks = BackgroundTasks()
        self.streams: Streams = {}
        """Upstream streams in flight by cache key, shared by identical streamed requests."""
        self.audit: AuditLog = open_audit(self.cache.url or config.cache.url)
        """Admin actions, purges, key rotations and config loads (``thrifty.audit``)."""
        self.purge_hooks: list[PurgeHook] = [self.ledger] if self.ledger is not None else []
        """Other holders of per-user rows a user purge must also clear (the cost ledger)."""
        self.audit.record(
            AuditRecord(
                AuditAction.CONFIG_LOAD,
                "gateway",
                {"source": source},
                detail={
                    "cache": redact_url(self.cache.url or config.cache.url),
                    "keys": len(config.keys),
                    "pii": str(config.cache.pii),
                    "encrypted": bool(config.cache.encryption_key),
                    "admin_api": bool(config.master_key),
                },
            )
        )

    def _count_backend_errors(self, limits: LimitBackend) -> None:
        """Every error of the cache store and the limit counters in
        ``thrifty_backend_errors_total{backend, op}``."""
        errors = self.metrics.backend_errors
        observe_errors(self.cache.store, lambda op: errors.labels("cache", op).inc())
        limits.errors.listener = lambda op: errors.labels("limits", op).inc()

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Readiness: each backend's health (masked), and whether all are up."""
        report = await backends(self.cache, self.limiter.backend)
        ok = all(part["up"] for part in report.values())
        return ok, {"status": "ok" if ok else "unavailable", "cache": summary(report),
                    "backends": report}  # fmt: skip

    async def aclose(self) -> None:
        """Finish the background work, then close providers, limits and the cache."""
        await self.tasks.drain()
        for provider in self.providers:
            with contextlib.suppress(Exception):
                await provider.aclose()
        with contextlib.suppress(Exception):
            await self.limiter.aclose()
        if self.ledger is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.ledger.close)
        with contextlib.suppress(Exception):
            await self.cache.adrain()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.cache.close)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.audit.close)
