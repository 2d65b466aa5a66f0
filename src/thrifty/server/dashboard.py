"""``GET /dashboard``: the ledger as a page — requests, hit rate, dollars spent and saved by
mechanism, tenant and model, over time — from static HTML/JS/CSS shipped in the package (no
build step, no CDN: charts are inline SVG).

The page itself holds no data, so it is served without a key; its script reads
``/admin/ledger/summary`` and ``/admin/ledger/series`` with the admin key the user types (kept
in ``sessionStorage``, or handed once as ``/dashboard#key=...``), so the numbers stay behind the
admin key like the rest of ``/admin``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from thrifty.server.bodies import json_response
from thrifty.server.errors import APIError

if TYPE_CHECKING:
    from thrifty.server.gateway import Gateway

#: The latency percentiles cover the last day, at most this many rows of it.
LATENCY_WINDOW_S = 86_400.0
LATENCY_ROWS = 100_000

ASSETS = {
    "/dashboard": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
#: Same-origin only: the page runs no script but its own and fetches only this gateway.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95 and p99 of ``values`` (inclusive method; all equal to the value for one)."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    if len(values) == 1:
        return dict.fromkeys(("p50", "p95", "p99"), values[0])
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98]}


def errors_by_status(gw: Gateway) -> dict[str, float]:
    """Answers with an error status since this process started, from its request counter."""
    counts: dict[str, float] = {}
    for metric in gw.metrics.registry.collect():
        for sample in metric.samples:
            status = sample.labels.get("status", "")
            if sample.name == "thrifty_requests_total" and status[:1] in ("4", "5"):
                counts[status] = counts.get(status, 0.0) + sample.value
    return counts


def dashboard_routes(gw: Gateway) -> list[Route]:
    """The page, its two assets and ``/admin/dashboard/latency`` (what the ledger's summary
    does not carry: latency percentiles per mechanism, and this process's error answers)."""
    static = files("thrifty.server") / "static"
    routes = []
    for path, (name, media_type) in ASSETS.items():
        body = (static / name).read_bytes()

        async def serve(
            request: Request, body: bytes = body, media_type: str = media_type
        ) -> Response:
            headers = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}
            return Response(body, media_type=media_type, headers=headers)

        routes.append(Route(path, serve, methods=["GET"]))

    async def latency(request: Request) -> Response:
        gw.keys.require_admin(request.headers)
        writer = gw.ledger
        if writer is None:
            raise APIError(
                404, "this gateway keeps no ledger (ledger.enabled is false)", code="ledger_off"
            )

        def read() -> dict[str, Any]:
            writer.flush()
            since = time.time() - LATENCY_WINDOW_S
            rows = writer.ledger.rows(since=since, limit=LATENCY_ROWS)
            by_mechanism: dict[str, list[float]] = {}
            for row in rows:
                by_mechanism.setdefault(str(row.mechanism), []).append(row.latency_ms)
            return {
                "rows": len(rows),
                "latency_ms": percentiles([row.latency_ms for row in rows]),
                "latency_ms_by_mechanism": {
                    m: percentiles(v) for m, v in sorted(by_mechanism.items())
                },
            }

        body = await asyncio.to_thread(read)
        return json_response({**body, "errors_by_status": errors_by_status(gw)})

    routes.append(Route("/admin/dashboard/latency", latency, methods=["GET"]))
    return routes
