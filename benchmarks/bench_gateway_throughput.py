"""Cache-hit throughput of one gateway worker: thrifty's gateway and LiteLLM's proxy, same run.

wrk (``apt-get install wrk``) runs in its own process and posts one chat request over and over:
after the first answer every request is a cache hit, so the upstream (a FAKE that answers at once,
``_fake_upstream.py``) is out of the picture. Each gateway runs one worker process. Reported:
requests/s, latency percentiles from wrk, errors (non-2xx and socket errors), and requests per
CPU-second the gateway process used (its "per core" rate; wrk shares the machine's cores).

    python benchmarks/bench_gateway_throughput.py --duration 10 --connections 50
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateways import (
    MODEL,
    Client,
    Proc,
    litellm_available,
    start_fake_upstream,
    start_litellm,
    start_thrifty,
)

PATH = "/v1/chat/completions"
BODY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "temperature": 0,
}
LUA = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


def run_wrk(url: str, script: Path, duration: int, connections: int) -> dict[str, object]:
    """One wrk run; its figures parsed from the text report."""
    argv = [
        "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
        url + PATH,
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    figures: dict[str, object] = {"raw": out}
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    figures["requests_per_s"] = float(match.group(1)) if match else 0.0
    match = re.search(r"(\d+) requests in", out)
    figures["requests"] = int(match.group(1)) if match else 0
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    figures["non_2xx"] = int(match.group(1)) if match else 0
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    figures["socket_errors"] = sum(int(g) for g in match.groups()) if match else 0
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if match:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
            figures[f"p{pct}_ms"] = round(float(match.group(1)) * scale, 3)
    return figures


def measure(proc: Proc, script: Path, args: argparse.Namespace) -> dict[str, object]:
    client = Client(proc.port)
    body = json.dumps(BODY).encode()
    _, status, _ = client.post(PATH, body)  # the miss that fills the cache
    if status != 200:
        raise RuntimeError(f"{proc.name}: priming request failed with {status}")
    _, _, response = client.post(PATH, body)
    hit_header = response.getheader("x-thrifty-cache-status") or response.getheader(
        "x-litellm-cache-key"
    )
    client.close()
    run_wrk(proc.url, script, 2, args.connections)  # warm-up
    cpu_before = proc.cpu_seconds()
    figures = run_wrk(proc.url, script, args.duration, args.connections)
    cpu = proc.cpu_seconds() - cpu_before
    figures["gateway_cpu_s"] = round(cpu, 2)
    figures["per_cpu_second"] = round(int(figures["requests"]) / cpu, 1) if cpu else None  # type: ignore[call-overload]
    figures["hit_marker"] = hit_header
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-throughput-"))
    script = workdir / "chat.lua"
    script.write_text(LUA.format(body=json.dumps(BODY)))
    rows: dict[str, dict[str, object]] = {}
    upstream = start_fake_upstream(workdir)
    try:
        thrifty = start_thrifty(upstream, workdir)
        try:
            rows["thrifty (SQLite cache)"] = measure(thrifty, script, args)
        finally:
            thrifty.stop()
        thrifty = start_thrifty(upstream, workdir, cache_url="memory://")
        try:
            rows["thrifty (memory cache)"] = measure(thrifty, script, args)
        finally:
            thrifty.stop()
        if not args.no_litellm and litellm_available():
            litellm = start_litellm(upstream, workdir, cache=True)
            try:
                rows["litellm (local cache)"] = measure(litellm, script, args)
            finally:
                litellm.stop()
    finally:
        upstream.stop()

    load = os.getloadavg()
    print(f"\nwrk -t1 -c{args.connections} -d{args.duration}s, one worker each, "
          f"load average {load[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print("| gateway | requests/s | per gateway CPU-second | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for name, f in rows.items():
        errors = int(f["non_2xx"]) + int(f["socket_errors"])  # type: ignore[call-overload]
        print(
            f"| {name} | {f['requests_per_s']:.0f} | {f['per_cpu_second']} | "
            f"{f.get('p50_ms')} | {f.get('p99_ms')} | {errors} |"
        )
    for name, f in rows.items():
        print(f"{name}: second request's hit marker: {f['hit_marker']!r}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
