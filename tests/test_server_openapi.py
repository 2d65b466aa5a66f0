"""``/openapi.json`` documents every route from the request schemas, ``/docs`` shows it, and
schemathesis fuzzing every documented operation in-process gets no 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
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


def both_modes(operation: Any) -> st.SearchStrategy[schemathesis.Case]:
    """Valid requests and invalid ones (an operation without parameters has no invalid
    ones: schemathesis then says so when drawing, and it gets valid ones only)."""
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    try:
        negative = operation.as_strategy(GenerationMode.NEGATIVE)
    except Exception:
        return positive
    return st.one_of(positive, negative)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_no_5xx_for_any_documented_request(api_schema: schemathesis.BaseSchema, op) -> None:
    operation = api_schema[op.path][op.method]
    auth = {"Authorization": f"Bearer {ADMIN}"}

    @given(case=both_modes(operation))
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def no_server_error(case: schemathesis.Case) -> None:
        if isinstance(case.body, dict) and "model" in case.body and len(repr(case.body)) % 2:
            case.body["model"] = "gpt-4o-mini"  # a served model: the upstream path runs too
        response = case.call(headers=auth)
        assert response.status_code < 500, (case.as_curl_command(), response.text[:500])

    no_server_error()
