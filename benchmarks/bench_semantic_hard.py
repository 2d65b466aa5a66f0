"""Hard pairs: wrong share of hits per trap type, thrifty's decision beside bare cosine bars.

    python benchmarks/gen_hard_pairs.py --part test && python benchmarks/bench_semantic_hard.py

Reads the pairs of ``gen_hard_pairs.py`` (``--part test``: generated from banking77 test and the
support set's second half, never used for tuning; ``--part dev`` while developing). Each pair
stands for "``a`` is cached, ``b`` is asked". Deciders, all on the same MiniLM cosine:

- ``cosine ≥ t`` for t in 0.80 / 0.85 / 0.90 / 0.95: a bare bar, no other check;
- ``thrifty @ t``: what ``SemanticMatcher`` decides for a candidate at that bar: the guards
  (``guards.py``) and then the learned pair scorer (``pair_scorer.py``) must both allow it;
  ``t`` = the default bar of ``policy.py`` and a few lower ones;
- ``verified δ``: the verified policy (δ = 1 %, 2 %) deciding each pair as a new entry, i.e. at
  its new-entry bar (by δ alone, the default, or with ``new_entry_bar`` at the fixed default
  bar), then the guards and the scorer as above.

Per trap: pairs, hits, and for label-0 traps the share of pairs served (each is wrong); for
label-1 traps the share served. Overall: the share of hits that are wrong (also without the
``near_intent`` pairs, whose labels are banking77's fine intents, to show the edited traps alone)
and the share of same-answer pairs served (goal: ≤ 5 % wrong while serving ≥ 40 %). Writes
``benchmarks/out/semantic_hard_PART.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_data import OUT, embed_cached
from thrifty.semantic.guards import Guards
from thrifty.semantic.pair_scorer import PairScorer
from thrifty.semantic.policy import DEFAULT_THRESHOLD
from thrifty.semantic.thresholds import VerifiedThreshold

BARS = (0.80, 0.85, 0.90, 0.95)


def load(part: str) -> list[dict]:
    path = OUT / f"hard_pairs_{part}.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} missing: run benchmarks/gen_hard_pairs.py --part {part} first")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def cosines(pairs: list[dict], name: str) -> np.ndarray:
    texts = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs})
    vectors = embed_cached(name, texts)
    where = {t: i for i, t in enumerate(texts)}
    a = vectors[[where[p["a"]] for p in pairs]]
    b = vectors[[where[p["b"]] for p in pairs]]
    return np.einsum("ij,ij->i", a, b)


def summarize(pairs: list[dict], served: np.ndarray) -> dict:
    per_trap: dict[str, dict[str, float]] = {}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        groups[p["trap"]].append(i)
    for trap, rows in groups.items():
        hits = int(served[rows].sum())
        per_trap[trap] = {"pairs": len(rows), "label": pairs[rows[0]]["label"], "served": hits}
    labels = np.array([p["label"] for p in pairs])
    hits = served.sum()
    wrong = (served & (labels == 0)).sum()
    edited = np.array([p["trap"] != "near_intent" for p in pairs])
    edited_hits = (served & edited).sum()
    return {
        "hits": int(hits),
        "wrong_share_of_hits": float(wrong / hits) if hits else 0.0,
        "wrong_share_without_near_intent": float(
            (served & edited & (labels == 0)).sum() / max(1, edited_hits)
        ),
        "same_answer_served": float((served & (labels == 1)).sum() / max(1, (labels == 1).sum())),
        "per_trap": per_trap,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["dev", "test"], default="test")
    args = parser.parse_args()
    pairs = load(args.part)
    sims = cosines(pairs, f"hard-{args.part}")
    guards, scorer = Guards(), PairScorer.default()
    allowed = np.array([guards.blocks(p["b"], p["a"]) is None for p in pairs])
    scored = np.array(
        [scorer.accepts(p["b"], p["a"], float(s)) for p, s in zip(pairs, sims, strict=True)]
    )
    deciders: dict[str, np.ndarray] = {f"cosine>={t:.2f}": sims >= t for t in BARS}
    for t in sorted({0.85, 0.90, DEFAULT_THRESHOLD}):
        deciders[f"thrifty@{t:.2f} guards"] = (sims >= t) & allowed
        deciders[f"thrifty@{t:.2f}"] = (sims >= t) & allowed & scored
    for delta in (0.01, 0.02):  # each pair a new entry: the verified policy's new-entry bar
        for name, bar in (("", None), (f" bar {DEFAULT_THRESHOLD}", DEFAULT_THRESHOLD)):
            t = VerifiedThreshold(delta, new_entry_bar=bar).new_entry_threshold
            deciders[f"verified {delta:.0%}{name} ({t:.3f})"] = (sims >= t) & allowed & scored
    results = {name: summarize(pairs, served) for name, served in deciders.items()}
    traps = list(results["cosine>=0.80"]["per_trap"])
    print(f"{len(pairs)} pairs ({args.part}); cells: share of the trap's pairs served")
    print(
        f"{'decider':<24}{'wrong/hits':>11}{'(edits)':>9}{'same served':>12}  "
        + " ".join(t[:9] for t in traps)
    )
    for name, r in results.items():
        cells = " ".join(
            f"{r['per_trap'][t]['served'] / r['per_trap'][t]['pairs']:>9.1%}" for t in traps
        )
        print(
            f"{name:<30}{r['wrong_share_of_hits']:>11.1%}"
            f"{r['wrong_share_without_near_intent']:>9.1%}{r['same_answer_served']:>12.1%}  {cells}"
        )
    out = OUT / f"semantic_hard_{args.part}.json"
    out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
