"""``/openapi.json`` documents every route from the request schemas, ``/docs`` shows it, and
schemathesis fuzzing every documented operation in-process gets no 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.applications import Starlette
from starlette.routing import Route

from _gateway import fake_config, gateway, web
from thrifty.server.app import create_app
from thrifty.server.batches import BATCH_DIR_ENV
from thrifty.server.openapi import OPERATIONS, openapi_document
from thrifty.server.schemas import ChatRequest, ThriftyOptions
from thrifty.testing.fake_openai import FakeOpenAI

ADMIN = "sk-admin-openapi"
#: Examples per operation: the whole module stays well under 30 s on two shared cores.
EXAMPLES = 12


def served_routes(app: Starlette) -> set[tuple[str, str]]:
    out = set()
    for route in app.routes:
        assert isinstance(route, Route), route
        for method in route.methods or ():
            if method != "HEAD":
                out.add((method, route.path))
    return out


def test_every_served_route_is_documented(fake: FakeOpenAI) -> None:
    documented = {(op.method, op.path) for op in OPERATIONS}
    with gateway(fake_config(fake.base_url)) as (_, app):
        served = served_routes(app)
    canonical = {(m, p if (m, p) in documented else "/v1" + p) for m, p in served}
    missing = canonical - documented
    assert not missing, f"add these routes to thrifty.server.openapi.OPERATIONS: {missing}"
    assert documented <= served  # nothing documented that is not served


def test_the_document_is_served_and_uses_the_validating_schemas(fake: FakeOpenAI) -> None:
    with gateway(fake_config(fake.base_url)) as (url, _):
        document = web.get(f"{url}/openapi.json").json()
        page = web.get(f"{url}/docs")
    assert document == openapi_document()
    chat = document["paths"]["/v1/chat/completions"]["post"]
    ref = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/ChatRequest"
    schemas = document["components"]["schemas"]
    assert schemas["ChatRequest"]["required"] == ChatRequest.model_json_schema()["required"]
    ttl = schemas["ThriftyOptions"]["properties"]["ttl"]
    assert ttl == ThriftyOptions.model_json_schema()["properties"]["ttl"]
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/v1/chat/completions" in page.text and "<script" not in page.text  # no CDN


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    with pytest.MonkeyPatch.context() as patch, FakeOpenAI() as fake:
        patch.setenv(BATCH_DIR_ENV, str(tmp_path_factory.mktemp("batches")))
        config = fake_config(
            fake.base_url,
            admin_key=ADMIN,
            router_settings={"num_retries": 0, "timeout": 5},
            server={"max_upload_bytes": 65536},
        )
        app = create_app(config, source="openapi-test.yaml")
        yield app
        from schemathesis.python import asgi

        asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def api_schema(api_app: Starlette) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", api_app)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_no_5xx_for_any_documented_request(api_schema: schemathesis.BaseSchema, op) -> None:
    operation = api_schema[op.path][op.method]
    auth = {"Authorization": f"Bearer {ADMIN}"}

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def no_server_error(case: schemathesis.Case) -> None:
        response = case.call(headers=auth)
        assert response.status_code < 500, (case.as_curl_command(), response.text[:500])

    no_server_error()
