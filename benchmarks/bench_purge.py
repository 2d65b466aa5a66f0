"""User purge on SQLite: what ``invalidate(user_id=…)`` alone leaves on disk, and what the full
``purge_user`` (invalidate + ``scrub``: VACUUM with secure_delete, WAL truncated) costs.

Run:  python benchmarks/bench_purge.py [--entries 10000] [--users 200] [--purges 5]

Two caches filled alike, side by side in one run (each purge alternates which goes first):
``invalidate`` (the purge before issue 12) and ``purge_user``. Each entry holds ~1 KB of answer
and its user's e-mail in the prompt; the user's entries are rewritten three times, so old page
versions sit in the WAL and in free pages. Reported: purge wall time (median), and how many
times the purged users' e-mails are still found in the raw file + WAL afterwards. Also the
append time of one audit record (the gateway writes one per admin action).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from thrifty.audit import AuditAction, AuditRecord, open_audit
from thrifty.cache import Cache
from thrifty.safety.purge import purge_user

FILLER = "Your parcel left the depot and will arrive within two working days. " * 15


def _email(user: int) -> str:
    return f"user{user:05d}.person@example.com"


def fill(url: str, entries: int, users: int) -> Cache:
    cache = Cache(url)
    for round_ in range(3):
        for n in range(entries):
            user = n % users
            asked = {"model": "m", "messages": [{"role": "user",
                     "content": f"I am {_email(user)}: where is order {n}?"}]}  # fmt: skip
            answer: dict[str, Any] = {"choices": [{"message": {"content": f"{FILLER} {round_}"}}]}
            cache.set_request(asked, answer, user_id=_email(user))
    return cache


def traces(folder: Path, emails: list[str]) -> int:
    raw = b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())
    return sum(raw.count(e.encode()) for e in emails)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--purges", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folders = {name: Path(tmp) / name for name in ("invalidate", "purge_user")}
        caches = {}
        for name, folder in folders.items():
            folder.mkdir()
            caches[name] = fill(f"sqlite:///{folder}/cache.db", args.entries, args.users)
        size = (folders["purge_user"] / "cache.db").stat().st_size
        times: dict[str, list[float]] = {name: [] for name in folders}
        purged = [_email(u) for u in range(args.purges)]
        for i, email in enumerate(purged):
            order = list(folders) if i % 2 == 0 else list(reversed(folders))
            for name in order:
                start = time.perf_counter()
                if name == "invalidate":
                    caches[name].invalidate(user_id=email)
                else:
                    purge_user(caches[name], email)
                times[name].append((time.perf_counter() - start) * 1000)
        print(f"SQLite file {size / 1e6:.1f} MB, {args.entries:,} entries x 3 writes; "
              f"{args.purges} users purged")  # fmt: skip
        print("| method | purge p50 (ms) | e-mails of purged users left in file + WAL |")
        print("|---|---|---|")
        for name, folder in folders.items():
            left = traces(folder, purged)
            print(f"| {name} | {statistics.median(times[name]):.1f} | {left} |")
        ratio = statistics.median(times["purge_user"]) / statistics.median(times["invalidate"])
        print(f"purge_user / invalidate time: {ratio:.1f}x")
        log = open_audit(f"sqlite:///{folders['purge_user']}/cache.db")
        samples = []
        for _ in range(200):
            start = time.perf_counter()
            log.record(AuditRecord(AuditAction.STATS, "bench", {"namespace": None}))
            samples.append((time.perf_counter() - start) * 1000)
        print(f"audit record append (SQLite) p50 {statistics.median(samples):.2f} ms")
        log.close()
        for cache in caches.values():
            cache.close()


if __name__ == "__main__":
    main()
