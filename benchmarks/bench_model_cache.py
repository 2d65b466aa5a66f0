"""`thrifty.cached` in front of a PyTorch model, on a GPU when there is one.

Side by side in one run, per model and batch size: the bare forward pass (synchronised, so
the GPU's work is counted), a thrifty miss (forward + key + store), a thrifty hit (key: the
input copied to the host and hashed; lookup; the stored answer decoded and put back on the
GPU), and a per-row batch where half the rows were seen before. Backends: memory and SQLite.
Input hashing: ``tree`` (thrifty's: inputs from 8 MB hashed in parallel chunks) beside
``serial`` (one SHA-256 pass, as before), each with its own cache.

    python benchmarks/bench_model_cache.py --device cuda --out results.json

Models (random weights; nothing downloaded): ``encoder``, a 6-layer transformer encoder
(d=768, 12 heads, 128 tokens, bfloat16 on a GPU), answering pooled vectors; ``mlp``, a
3-layer 4096-wide MLP on 1024-wide inputs. The ratio that matters is bare / hit: how many
times faster a repeated input is answered than recomputed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import thrifty
from thrifty.integrations import _tensors

TREE_MIN = _tensors.TREE_HASH_MIN_BYTES
SERIAL = 1 << 62


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> list[float]:
    """Milliseconds of each call, the device synchronised around it."""
    out = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def build(name: str, device: torch.device) -> tuple[torch.nn.Module, Callable[[int], Any]]:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if name == "encoder":
        layer = torch.nn.TransformerEncoderLayer(768, 12, 3072, batch_first=True)
        model: torch.nn.Module = torch.nn.TransformerEncoder(layer, 6)

        def inputs(batch: int) -> Any:
            return torch.randn(batch, 128, 768, device=device, dtype=dtype)

    else:
        model = torch.nn.Sequential(
            torch.nn.Linear(1024, 4096),
            torch.nn.GELU(),
            torch.nn.Linear(4096, 4096),
            torch.nn.GELU(),
            torch.nn.Linear(4096, 256),
        )

        def inputs(batch: int) -> Any:
            return torch.randn(batch, 1024, device=device, dtype=dtype)

    return model.to(device=device, dtype=dtype).eval(), inputs


def each(fn: Callable[[Any], Any], inputs: list[Any]) -> Callable[[], Any]:
    """A call of ``fn`` on the next of ``inputs`` at each call."""
    it = iter(inputs)
    return lambda: fn(next(it))


def p50(values: list[float]) -> float:
    return statistics.median(values)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    device = torch.device(args.device)
    rows: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp())
    for name in args.models:
        model, inputs = build(name, device)

        @torch.inference_mode()
        def forward(x: Any, model: torch.nn.Module = model, name: str = name) -> Any:
            out = model(x)
            return out.mean(dim=1) if name == "encoder" else out

        for batch, backend, hashing in itertools.product(args.batches, args.backends, args.hashing):
            _tensors.TREE_HASH_MIN_BYTES = SERIAL if hashing == "serial" else TREE_MIN
            db = tmp / f"{name}-{batch}-{hashing}.db"
            url = "memory://" if backend == "memory" else f"sqlite:///{db}"
            cache = thrifty.Cache(url)
            whole = thrifty.cached(model=f"{name}-whole", cache=cache)(forward)
            rowwise = thrifty.cached(model=f"{name}-rows", cache=cache, per_row=True)(forward)
            x = inputs(batch)
            for _ in range(3):  # warm-up: kernels, allocator
                forward(x)
            bare = timed(lambda x=x: forward(x), device, args.repeats)
            fresh = [inputs(batch) for _ in range(args.repeats)]
            miss = timed(each(whole, fresh), device, args.repeats)
            hit = timed(each(whole, [x] * args.repeats), device, args.repeats)
            check = whole(x)
            assert check.device == forward(x).device and torch.equal(check, whole(x))
            half = batch // 2 or 1
            seen = inputs(batch)
            rowwise(seen)
            mixed_inputs = [
                torch.cat([seen[:half], inputs(batch - half)]) for _ in range(args.repeats)
            ]
            mixed = timed(each(rowwise, mixed_inputs), device, args.repeats)
            row = {
                "model": name,
                "device": str(device),
                "batch": batch,
                "backend": backend,
                "hashing": hashing,
                "bare_ms": p50(bare),
                "miss_ms": p50(miss),
                "hit_ms": p50(hit),
                "hit_p99_ms": sorted(hit)[int(0.99 * (len(hit) - 1))],
                "half_rows_seen_ms": p50(mixed),
                "bare_over_hit": p50(bare) / p50(hit),
                "miss_over_bare": p50(miss) / p50(bare),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            cache.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=["encoder", "mlp"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32, 256])
    parser.add_argument("--backends", nargs="+", default=["memory", "sqlite"])
    parser.add_argument("--hashing", nargs="+", default=["tree", "serial"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = run(args)
    print(f"\n{'model':8} {'batch':>5} {'backend':7} {'hash':6} {'bare':>9} {'miss':>9} {'hit':>9} "
          f"{'half seen':>10} {'bare/hit':>9}")  # fmt: skip
    for r in rows:
        print(f"{r['model']:8} {r['batch']:>5} {r['backend']:7} {r['hashing']:6} "
              f"{r['bare_ms']:>7.3f}ms {r['miss_ms']:>7.3f}ms {r['hit_ms']:>7.3f}ms "
              f"{r['half_rows_seen_ms']:>8.3f}ms {r['bare_over_hit']:>8.1f}x")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
