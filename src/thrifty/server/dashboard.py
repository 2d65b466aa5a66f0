"""``GET /dashboard``: the ledger as a page — requests, hit rate, dollars spent and saved by
mechanism, tenant and model, over time — from static HTML/JS/CSS shipped in the package (no
build step, no CDN: charts are inline SVG).

The page itself holds no data, so it is served without a key; its script reads
``/admin/ledger/summary`` and ``/admin/ledger/series`` with the admin key the user types (kept
in ``sessionStorage``, or handed once as ``/dashboard#key=...``), so the numbers stay behind the
admin key like the rest of ``/admin``.
"""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ASSETS = {
    "/dashboard": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
#: Same-origin only: the page runs no script but its own and fetches only this gateway.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"


def dashboard_routes() -> list[Route]:
    """The page and its two assets, read once from the package."""
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
    return routes
