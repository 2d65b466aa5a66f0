"""The model names a gateway serves: its deployments' and its route models'.

Kept apart from the pool so that the request stages can check a model name (404/400 before
anything is spent) without reaching into routing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.routing import DeploymentPool
from thrifty.server.errors import APIError
from thrifty.server.upstreams import serves


class ModelCatalog:
    """What can be asked for.

    Args:
        pool: the deployments by model name.
        routes: the route models by name (anything with a name is enough here).
    """

    def __init__(self, pool: DeploymentPool, routes: Mapping[str, Any]) -> None:
        self.pool = pool
        self.routes = routes

    def names(self) -> list[str]:
        return [*self.pool.models(), *self.routes]

    def require(self, model: str, operation: str | None = None) -> None:
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
                f"the model {model!r} does not exist; served: {', '.join(self.names())}",
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
