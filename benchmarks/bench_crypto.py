"""Encryption at rest: seal + open time of one cache payload with thrifty's AES-GCM keyring.

Run:  python benchmarks/bench_crypto.py [--n 20000]

Times ``Keyring.encrypt`` and ``Keyring.decrypt`` (AES-256-GCM, random nonce, the cache key as
AAD) on 1 KB and 16 KB payloads, and ``hash_identifier`` on a user id; reports per-call
percentiles in µs, from N calls each after a warm-up. The budget is a few microseconds: the hit
path of the memory backend is itself a few microseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial

from thrifty.safety.crypto import Key, Keyring

AAD = b"thrifty:v1:support:4f9a1c0e9b7d2a33"


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Per-call wall time (µs) of ``fn`` over ``n`` calls, after ``n // 10`` warm-up calls."""
    for _ in range(n // 10):
        fn()
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        t = clock()
        fn()
        out.append((clock() - t) / 1000)
    out.sort()
    return out


def row(name: str, xs: list[float]) -> str:
    p = lambda q: xs[min(len(xs) - 1, int(len(xs) * q))]  # noqa: E731
    return (
        f"{name:28} mean {statistics.fmean(xs):7.2f}  p50 {p(0.5):7.2f}  "
        f"p90 {p(0.9):7.2f}  p99 {p(0.99):7.2f} µs"
    )


def _round_trip(keyring: Keyring, payload: bytes) -> bytes:
    return keyring.decrypt(keyring.encrypt(payload, AAD), AAD)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    keyring = Keyring(Key("current", os.urandom(32)), [Key("old", os.urandom(32))])
    for size in (1024, 16 * 1024):
        payload = os.urandom(size)
        blob = keyring.encrypt(payload, AAD)
        label = f"{size // 1024:2d} KB"
        round_trip = partial(_round_trip, keyring, payload)
        print(row(f"encrypt {label}", timed(partial(keyring.encrypt, payload, AAD), args.n)))
        print(row(f"decrypt {label}", timed(partial(keyring.decrypt, blob, AAD), args.n)))
        print(row(f"encrypt+decrypt {label}", timed(round_trip, args.n)))
    print(row("hash_identifier", timed(partial(keyring.hash_identifier, "user-4711"), args.n)))


if __name__ == "__main__":
    main()
