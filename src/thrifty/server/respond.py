"""The boundary between the ASGI app and a chain: one request context in, one response out.

Everything that leaves a chain passes here: an answer gets its ``X-Thrifty-*`` headers, an
exception becomes an OpenAI error body through the one table of ``server/errors.py`` (never a
500 for a client's mistake), and every request is counted with its status and the overhead the
gateway added (its whole time minus the upstream's).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request

from thrifty.server.context import Handler, Operation, RequestContext
from thrifty.server.errors import error_response
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.streaming import SSEResponse


class Respond:
    """A Starlette endpoint running ``handler`` (a chain, or a small admin handler).

    Args:
        name: the endpoint label of metrics.
        handler: returns the response of a request context.
        metrics: ``thrifty_requests`` and ``thrifty_gateway_overhead_seconds``.
        operation: what a model endpoint serves (None for the others).
    """

    def __init__(
        self,
        name: str,
        handler: Handler,
        *,
        metrics: GatewayMetrics,
        operation: Operation | None = None,
    ) -> None:
        self.name = name
        self.handler = handler
        self.metrics = metrics
        self.operation = operation

    async def __call__(self, request: Request) -> Any:
        ctx = RequestContext(request, self.name, self.operation)
        try:
            response = await self.handler(ctx)
        except Exception as exc:
            response = error_response(exc, ctx.model, self.name)
        headers = ctx.thrifty_headers()
        overhead = time.perf_counter() - ctx.started - ctx.upstream_seconds
        headers["X-Thrifty-Overhead-Ms"] = f"{overhead * 1000:.3f}"
        if isinstance(response, SSEResponse):
            response.headers.update(headers)
            status = 200
        else:  # new names only: appending skips MutableHeaders' scan per header
            response.raw_headers.extend(
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in headers.items()
            )
            status = response.status_code
        metrics = self.metrics
        metrics.requests.labels(self.name, metrics.model_label(ctx.model), str(status)).inc()
        metrics.overhead.labels(self.name).observe(max(overhead, 0.0))
        return response
