"""A replica's resident memory against the number of cached entries, semantic index in process
(usearch) or on a vector engine (``docs/scaling.md``, issue 17's goal: independent of the
entries when the engine is on).

One ``thrifty serve`` replica (semantic on, the ``hashing`` embedder: 256 dimensions, no model
in memory) with its exact cache on the machine's Redis under a prefix of this run's own, in
front of a FAKE upstream; N distinct questions (each a miss: stored and indexed); the replica's
RSS is sampled every N/8 entries. The engine is a milvus-lite server in its own process
(``python -m milvus_lite server``, reached as ``milvus://``, the client path of a Milvus
server), or the URL given with ``--engine``.

    python benchmarks/bench_replica_memory.py --entries 8000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateways import MODEL, free_port, start_fake_upstream, start_thrifty

REDIS = "redis://127.0.0.1:6379/0"


def start_engine(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    from pymilvus import MilvusClient

    port = free_port()
    argv = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(folder),
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            MilvusClient(f"http://127.0.0.1:{port}").list_collections()
            return server, f"milvus://127.0.0.1:{port}"
        except Exception:
            time.sleep(0.3)
    raise RuntimeError("the milvus-lite server did not start")


def fill(index: str, entries: int, workdir: Path, prefix: str) -> list[tuple[int, float]]:
    upstream = start_fake_upstream(workdir)
    cache = {"url": f"{REDIS}?prefix={prefix}", "semantic": True, "embedder": "hashing",
             "semantic_index": index}  # fmt: skip
    replica = start_thrifty(upstream, workdir, name=f"replica-{prefix[-9:-1]}",
                            extra={"cache": cache, "ledger": {"enabled": False}})  # fmt: skip
    curve = []
    try:
        with httpx.Client(timeout=30) as client:

            def ask(i: int) -> None:
                text = f"question number {i} about topic {i * 7919}"
                body = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
                answer = client.post(f"{replica.url}/v1/chat/completions", json=body)
                answer.raise_for_status()

            ask(-1)  # the semantic layer loaded, the index opened
            time.sleep(1.0)
            curve.append((0, replica.rss_mb()))
            step = max(1, entries // 8)
            with ThreadPoolExecutor(4) as pool:
                for start in range(0, entries, step):
                    list(pool.map(ask, range(start, min(entries, start + step))))
                    curve.append((min(entries, start + step), replica.rss_mb()))
    finally:
        replica.stop()
        upstream.stop()
        client = redis.Redis.from_url(REDIS)
        names = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if names:
            client.delete(*names)
        client.close()
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=8000)
    parser.add_argument("--engine", default=None, help="engine URL (default: a milvus-lite "
                        "server started here)")  # fmt: skip
    parser.add_argument("--skip-local", action="store_true", help="measure the engine only")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = None
        engine = args.engine
        if engine is None:
            server, engine = start_engine(workdir / "engine")
            engine += "?flush_every=512"  # milvus-lite scans unflushed rows in Python
        sep = "&" if "?" in engine else "?"
        try:
            modes = {
                "usearch in process": str(workdir / "local-index"),
                f"engine {engine}": f"{engine}{sep}collection=memory_{run}",
            }
            for name, index in modes.items():
                if args.skip_local and name.startswith("usearch"):
                    continue
                curve = fill(index, args.entries, workdir, f"thrifty-bench-mem-{run}-{len(name)}:")
                n = np.array([c[0] for c in curve[1:]], dtype=float)
                mb = np.array([c[1] for c in curve[1:]])
                per_thousand = np.polyfit(n, mb, 1)[0] * 1000  # MB per 1,000 entries
                points = ", ".join(f"{k:,}: {v:.0f}" for k, v in curve)
                print(f"{name}: RSS MB by entries: {points}")
                print(f"  fitted growth: {per_thousand:.2f} MB per 1,000 entries")
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=20)


if __name__ == "__main__":
    main()
