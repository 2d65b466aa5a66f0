"""Gateway overhead on a cache miss: thrifty's gateway and LiteLLM's proxy, side by side.

The same request stream goes straight to a FAKE upstream (it answers at once with a canned
completion, see ``_fake_upstream.py``) and through each gateway, in interleaved pairs (direct and
gateway back to back, in random order, each with a fresh prompt so that every request is a miss),
in blocks of ``--block`` pairs per gateway in turn with a 1 s pause between blocks (so that one
gateway's background work does not land on another's requests). The overhead of a request is
its gateway time minus its pair's direct time; reported as median and p99 over all pairs.
Requests go back to back by default; ``--gap-ms`` adds a pause after each gateway request (so
work a gateway does after answering, such as LiteLLM's logging or thrifty's background cache
write, cannot slow the next direct request), at the price of measuring processes that wake from
idle, which is slower for every gateway. Everything runs on loopback, each server in its own
process, one keep-alive client connection per path.

    python benchmarks/bench_gateway_overhead.py --pairs 2000

Rows: ``thrifty miss`` (the default path: cache lookup, upstream call, answer stored in the SQLite
cache), ``thrifty no-store`` (``X-Thrifty-Cache: no-store``: no cache write), ``litellm`` (its
proxy 1.100.5, cache off). ``--baseline COMMIT`` adds ``thrifty miss @COMMIT``: the same gateway
built from an older commit (extracted with ``git archive`` into a temporary folder), measured in
the same run, to show that a change did not slow the miss path. ``--ledger`` adds ``thrifty miss
ledger-off``: a second gateway with ``ledger: {enabled: false}`` (the default path writes each
request's ledger row), to show what the ledger adds to the median overhead.

    python benchmarks/bench_gateway_overhead.py --ledger --no-litellm --pairs 1500
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateways import (
    Client,
    Proc,
    chat_body,
    checkout,
    litellm_available,
    percentile,
    start_fake_upstream,
    start_litellm,
    start_thrifty,
)

PATH = "/v1/chat/completions"
BLOCK_PAUSE_S = 1.0


def measure(
    targets: dict[str, tuple[Client, dict[str, str]]],
    direct: Client,
    pairs: int,
    run: str,
    *,
    record: bool,
    block: int,
    gap: float,
) -> dict[str, dict[str, list[float]]]:
    """Overheads (seconds) per target, in blocks of ``block`` pairs per target in turn.

    Blocks rather than one pair per target in turn: a gateway's background work after an answer
    (LiteLLM's logging tasks, thrifty's cache write) would otherwise land on the next gateway's
    request. A pause between blocks lets it finish; every pair is recorded.
    """
    out: dict[str, dict[str, list[float]]] = {
        name: {"overhead": [], "direct": [], "via": [], "reported_ms": [], "skipped": []}
        for name in targets
    }
    rng = random.Random(7)
    schedule = [
        (name, i)
        for start in range(0, pairs, block)
        for name in targets
        for i in range(start, min(start + block, pairs))
    ]
    previous = None
    for name, i in schedule:
        if name != previous:
            time.sleep(BLOCK_PAUSE_S)
            previous = name
        client, headers = targets[name]
        reconnects = client.reconnects + direct.reconnects
        body = chat_body(f"[{run}] {name} question {i}: what does a fake upstream say?")
        first_direct = rng.random() < 0.5
        if first_direct:
            d, d_status, _ = direct.post(PATH, body)
        v, v_status, response = client.post(PATH, body, headers)
        if gap:
            time.sleep(gap)  # think time: after-answer work must not slow the next request
        if not first_direct:
            d, d_status, _ = direct.post(PATH, body)
        if d_status != 200 or v_status != 200:
            raise RuntimeError(f"{name}: status {v_status} (direct {d_status})")
        cache_status = response.getheader("x-thrifty-cache-status")
        if cache_status not in (None, "MISS", "BYPASS"):
            raise RuntimeError(f"{name}: expected a miss, got {cache_status}")
        if client.reconnects + direct.reconnects != reconnects:
            out[name]["skipped"].append(1.0)  # a dropped keep-alive: not a clean pair
        elif record:
            out[name]["overhead"].append(v - d)
            out[name]["direct"].append(d)
            out[name]["via"].append(v)
            reported = response.getheader("x-thrifty-overhead-ms")
            if reported is not None:
                out[name]["reported_ms"].append(float(reported))
    return out


def summarize(results: dict[str, dict[str, list[float]]]) -> list[dict[str, object]]:
    rows = []
    for name, series in results.items():
        overhead = series["overhead"]
        row: dict[str, object] = {
            "path": name,
            "pairs": len(overhead),
            "skipped_pairs": len(series["skipped"]),
            "overhead_median_ms": round(statistics.median(overhead) * 1000, 3),
            "overhead_p99_ms": round(percentile(overhead, 99) * 1000, 3),
            "overhead_p90_ms": round(percentile(overhead, 90) * 1000, 3),
            "direct_median_ms": round(statistics.median(series["direct"]) * 1000, 3),
            "direct_p99_ms": round(percentile(series["direct"], 99) * 1000, 3),
            "via_median_ms": round(statistics.median(series["via"]) * 1000, 3),
        }
        if series["reported_ms"]:
            row["x_thrifty_overhead_ms_median"] = round(statistics.median(series["reported_ms"]), 3)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--block", type=int, default=100, help="pairs per gateway in turn")
    parser.add_argument(
        "--gap-ms", type=float, default=0.0, help="pause after each gateway request"
    )
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--baseline", metavar="COMMIT", help="also measure this commit's gateway")
    parser.add_argument(
        "--ledger", action="store_true", help="also measure a gateway with the ledger off"
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-overhead-"))
    procs: list[Proc] = []
    try:
        upstream = start_fake_upstream(workdir)
        procs.append(upstream)
        thrifty = start_thrifty(upstream, workdir)
        procs.append(thrifty)
        targets = {
            "thrifty miss": (Client(thrifty.port), {}),
            "thrifty no-store": (Client(thrifty.port), {"X-Thrifty-Cache": "no-store"}),
        }
        if args.baseline:
            tree = checkout(args.baseline, workdir / "baseline")
            old = start_thrifty(upstream, workdir, src=tree / "src", name="thrifty-baseline")
            procs.append(old)
            targets[f"thrifty miss @{args.baseline}"] = (Client(old.port), {})
        if args.ledger:
            off = start_thrifty(
                upstream, workdir, name="thrifty-ledger-off", extra={"ledger": {"enabled": False}}
            )
            procs.append(off)
            targets["thrifty miss ledger-off"] = (Client(off.port), {})
        if not args.no_litellm:
            if litellm_available():
                litellm = start_litellm(upstream, workdir, cache=False)
                procs.append(litellm)
                targets["litellm"] = (Client(litellm.port), {})
            else:
                print("LiteLLM is not installed (see _gateways.py); measuring thrifty alone")
        direct = Client(upstream.port)
        run = uuid.uuid4().hex[:8]
        measure(
            targets,
            direct,
            args.warmup,
            run + "w",
            record=False,
            block=args.block,
            gap=args.gap_ms / 1000,
        )
        started = time.perf_counter()
        results = measure(
            targets, direct, args.pairs, run, record=True, block=args.block, gap=args.gap_ms / 1000
        )
        elapsed = time.perf_counter() - started
    finally:
        for proc in reversed(procs):
            proc.stop()

    rows = summarize(results)
    print(
        f"\n{args.pairs} interleaved pairs per path in {elapsed:.1f} s (fake upstream on loopback)"
    )
    print(
        "| path | overhead median ms | overhead p90 ms | overhead p99 ms | direct median ms "
        "| direct p99 ms | via median ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['path']} | {row['overhead_median_ms']} | {row['overhead_p90_ms']} | "
            f"{row['overhead_p99_ms']} | {row['direct_median_ms']} | {row['direct_p99_ms']} | "
            f"{row['via_median_ms']} |"
        )
    by_path = {row["path"]: row for row in rows}
    if args.baseline:
        old_median = float(by_path[f"thrifty miss @{args.baseline}"]["overhead_median_ms"])  # type: ignore[arg-type]
        new_median = float(by_path["thrifty miss"]["overhead_median_ms"])  # type: ignore[arg-type]
        print(f"thrifty miss median, this tree / @{args.baseline}: {new_median / old_median:.3f}")
    if args.ledger:
        on = float(by_path["thrifty miss"]["overhead_median_ms"])  # type: ignore[arg-type]
        off_median = float(by_path["thrifty miss ledger-off"]["overhead_median_ms"])  # type: ignore[arg-type]
        print(f"ledger on - off, median overhead: {on - off_median:+.3f} ms")
    if "litellm" in by_path:
        litellm_median = float(by_path["litellm"]["overhead_median_ms"])  # type: ignore[arg-type]
        for name in ("thrifty miss", "thrifty no-store"):
            ours = float(by_path[name]["overhead_median_ms"])  # type: ignore[arg-type]
            ratio = litellm_median / ours if ours > 0 else float("inf")
            print(f"LiteLLM median / {name} median: {ratio:.1f}x")
    for row in rows:
        if "x_thrifty_overhead_ms_median" in row:
            print(
                f"{row['path']}: X-Thrifty-Overhead-Ms median {row['x_thrifty_overhead_ms_median']}"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
