"""``bench_exact_cache.py`` on this tree and on an older commit, alternated in one run.

A refactor must not slow the hit path. Two versions of thrifty cannot be imported into one
process, so each round runs both versions' own ``bench_exact_cache.py`` (each with its own
``src`` on ``PYTHONPATH``) one after the other, in alternating order, and reads the ratios each
prints: thrifty's hit p50 over the bare dict + key (memory; target <= 2x) and LangChain's
SQLiteCache p50 over thrifty's (SQLite; target >= 20x). Ratios are taken within one process, so
machine noise mostly cancels; the rounds show how much is left.

    python benchmarks/compare_exact_cache.py --baseline ba1737f --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _gateways import checkout  # noqa: E402

ROWS = {
    "memory": ("ThriftyCache(memory://)", "dict + thrifty key (reference)"),
    "sqlite": ("ThriftyCache(sqlite)", "LangChain SQLiteCache"),
}


def p50s(output: str) -> dict[str, float]:
    """Contender name -> p50 µs, from the markdown tables ``bench_exact_cache.py`` prints."""
    out = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1].replace(".", "", 1).isdigit():
            out[cells[0]] = float(cells[1])
    return out


def run_once(tree: Path, n: int) -> dict[str, float]:
    """(this version's figures) memory: thrifty/dict p50 ratio; sqlite: LangChain/thrifty."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    argv = [sys.executable, str(tree / "benchmarks" / "bench_exact_cache.py"), "--n", str(n)]
    argv += ["--only", "memory", "--only", "sqlite"]
    done = subprocess.run(argv, env=env, cwd=tree, capture_output=True, text=True, check=True)
    p50 = p50s(done.stdout)
    thrifty_mem, dict_mem = (p50[name] for name in ROWS["memory"])
    thrifty_sql, lc_sql = (p50[name] for name in ROWS["sqlite"])
    return {
        "memory: thrifty / dict+key": thrifty_mem / dict_mem,
        "sqlite: LangChain / thrifty": lc_sql / thrifty_sql,
        "memory hit p50 us": thrifty_mem,
        "sqlite hit p50 us": thrifty_sql,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, metavar="COMMIT")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    base = checkout(args.baseline, Path(tempfile.mkdtemp(prefix="thrifty-baseline-")))
    trees = {"this tree": HERE.parent, f"@{args.baseline}": base}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for i in range(args.rounds):
        order = list(trees) if i % 2 == 0 else list(reversed(trees))
        for name in order:
            figures = run_once(trees[name], args.n)
            results[name].append(figures)
            shown = ", ".join(f"{k} {v:.2f}" for k, v in figures.items())
            print(f"round {i + 1}, {name}: {shown}", flush=True)
    print("\n| version | " + " | ".join(results["this tree"][0]) + " |")
    print("|---" * (1 + len(results["this tree"][0])) + "|")
    for name, rounds in results.items():
        medians = [statistics.median(r[k] for r in rounds) for k in rounds[0]]
        print(f"| {name} | " + " | ".join(f"{m:.2f}" for m in medians) + " |")


if __name__ == "__main__":
    main()
