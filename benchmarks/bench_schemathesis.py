"""schemathesis against the gateway's ``/openapi.json``, the long run: how many requests, which
statuses, and how many 5xx (the goal is 0).

    python benchmarks/bench_schemathesis.py --examples 300
    python benchmarks/bench_schemathesis.py --examples 50 --only "POST /v1/chat/completions"

The gateway runs in-process (schemathesis's ASGI transport) in front of the FAKE OpenAI
upstream on loopback, with an admin key sent on every request so the admin routes run too;
schemathesis generates valid and invalid requests (about half each) for every documented
operation; half the bodies name a served model. The CI test, ``tests/test_server_openapi.py``,
is the same with a few examples. Each 5xx is printed as a curl command to reproduce it.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _gateway import fake_config
from test_server_openapi import both_modes
from thrifty.server.app import create_app
from thrifty.server.batches import BATCH_DIR_ENV
from thrifty.server.openapi import OPERATIONS
from thrifty.testing.fake_openai import FakeOpenAI

ADMIN = "sk-admin-bench"


def served_model(case: schemathesis.Case) -> None:
    """Half the generated bodies name a model the gateway serves, so the upstream path runs
    too (a random name is a 404 before anything else happens)."""
    body = case.body
    if isinstance(body, dict) and "model" in body and len(repr(body)) % 2:
        body["model"] = "gpt-4o-mini"


def fuzz(schema: Any, path: str, method: str, examples: int,
         failures: list[str]) -> collections.Counter[int]:  # fmt: skip
    """``examples`` generated requests to one operation; the count of each status."""
    seen: collections.Counter[int] = collections.Counter()

    @given(case=both_modes(schema[path][method]))
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def call(case: schemathesis.Case) -> None:
        served_model(case)
        response = case.call(headers={"Authorization": f"Bearer {ADMIN}"})
        seen[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{response.status_code} {case.as_curl_command()}")

    call()
    return seen


def run(examples: int, only: str | None) -> dict[str, Any]:
    statuses: dict[str, collections.Counter[int]] = {}
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as root, FakeOpenAI() as fake:
        os.environ[BATCH_DIR_ENV] = root
        config = fake_config(fake.base_url, admin_key=ADMIN,
                             router_settings={"num_retries": 0, "timeout": 5},
                             server={"max_upload_bytes": 65536})  # fmt: skip
        app = create_app(config, source="bench.yaml")
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        started = time.perf_counter()
        for op in OPERATIONS:
            label = f"{op.method} {op.path}"
            if only and label != only:
                continue
            seen = statuses[label] = fuzz(schema, op.path, op.method, examples, failures)
            print(f"{label:45} {sum(seen.values()):6} requests  {dict(sorted(seen.items()))}")
        elapsed = time.perf_counter() - started
        from schemathesis.python import asgi

        asgi.shutdown_lifespans()
    total = sum(sum(c.values()) for c in statuses.values())
    errors = sum(n for c in statuses.values() for s, n in c.items() if s >= 500)
    return {"operations": len(statuses), "requests": total, "5xx": errors,
            "seconds": elapsed, "failures": failures}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="examples per operation")
    parser.add_argument("--only", help='one operation, e.g. "POST /v1/chat/completions"')
    args = parser.parse_args()
    result = run(args.examples, args.only)
    for line in result["failures"][:20]:
        print(line)
    print(f"{result['operations']} operations, {result['requests']} requests, "
          f"{result['5xx']} 5xx, {result['seconds']:.1f} s")  # fmt: skip
    sys.exit(1 if result["5xx"] else 0)


if __name__ == "__main__":
    main()
