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

#: The model name of a catch-all entry (LiteLLM's convention): it answers every name that no
#: other entry or route serves. The default setup has one, so ``gpt-4o-mini`` from a newcomer's
#: OpenAI snippet is answered by the local model (``X-Thrifty-Route`` names it) instead of 404.
CATCH_ALL = "*"


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
        """The names a client can list (a catch-all entry is not a name)."""
        return [*(m for m in self.pool.models() if m != CATCH_ALL), *self.routes]

    def resolve(self, model: str, operation: str | None = None) -> str:
        """The entry that serves ``model``: itself, else the catch-all entry when there is one
        and it serves ``operation`` (an unknown name otherwise is left for :meth:`require` to
        refuse, listing what is served)."""
        if model in self.routes or model in self.pool or CATCH_ALL not in self.pool:
            return model
        catch_all = self.pool.deployments(CATCH_ALL)
        if operation and not any(serves(d.target, operation) for d in catch_all):
            return model
        return CATCH_ALL

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
