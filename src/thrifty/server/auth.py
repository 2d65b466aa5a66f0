"""Bearer API keys mapped to tenants, and the admin key.

Without configured keys the gateway is open and every request belongs to the cache's default
namespace. With keys, a missing or unknown key is a 401. The admin (master) key opens
``/admin/*`` and may also call the model routes, as the default tenant with no limits.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers

from thrifty.limits.base import KeyLimits
from thrifty.server.config import KeySettings
from thrifty.server.errors import APIError


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant (cache namespace) and the key's limits."""

    tenant: str
    limits: KeyLimits
    key_id: str
    """A hash of the key, safe for logs and limit counters (never the secret itself)."""
    admin: bool = False


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def bearer_token(headers: Headers) -> str | None:
    """The key from ``Authorization: Bearer``, else ``api-key``/``x-api-key`` (Azure style)."""
    value = headers.get("authorization")
    if value:
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return headers.get("api-key") or headers.get("x-api-key")


class KeyRing:
    """Resolves request headers to a :class:`Principal`.

    Args:
        keys: the configured keys; empty means the gateway is open.
        default_tenant: the tenant of open access and of the admin key.
        admin_key: the master key for ``/admin/*`` (None: the admin API is closed).
    """

    def __init__(
        self, keys: Iterable[KeySettings], *, default_tenant: str, admin_key: str | None
    ) -> None:
        self._keys = {
            k.key: Principal(
                k.tenant, KeyLimits(k.rpm, k.tpm, k.max_budget_usd, k.budget_period), key_id(k.key)
            )
            for k in keys
        }
        self.admin_key = admin_key
        self._open = Principal(default_tenant, KeyLimits(), "open")
        self._admin = Principal(default_tenant, KeyLimits(), "admin", admin=True)

    @property
    def open(self) -> bool:
        return not self._keys

    def by_id(self, submitted_by: str) -> Principal | None:
        """The configured key whose hash (``Principal.key_id``) is ``submitted_by``, if any."""
        for principal in self._keys.values():
            if principal.key_id == submitted_by:
                return principal
        return None

    def _is_admin(self, token: str | None) -> bool:
        return bool(self.admin_key and token) and hmac.compare_digest(
            str(token).encode(), str(self.admin_key).encode()
        )

    def authenticate(self, headers: Headers) -> Principal:
        """The caller of a model route.

        Raises:
            APIError: 401 when keys are configured and the key is missing or unknown.
        """
        token = bearer_token(headers)
        if token is not None:
            principal = self._keys.get(token)
            if principal is not None:
                return principal
            if self._is_admin(token):
                return self._admin
        if self.open:
            return self._open
        if token is None:
            raise APIError(
                401, "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key"
            )
        raise APIError(401, "invalid API key", code="invalid_api_key")

    def require_admin(self, headers: Headers) -> Principal:
        """The admin caller of ``/admin/*``.

        Raises:
            APIError: 403 when no admin key is configured; 401 for a missing or wrong key.
        """
        if not self.admin_key:
            raise APIError(
                403, "the admin API is disabled: set admin_key in the config", code="admin_disabled"
            )
        token = bearer_token(headers)
        if not self._is_admin(token):
            raise APIError(401, "the admin API needs the admin key", code="invalid_api_key")
        return self._admin
