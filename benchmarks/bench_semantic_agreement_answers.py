"""Neighbourhood agreement when the answers are free text, as a gateway caches them.

The support stream's test half (3 shuffled orders): each query's answer is its Bitext response,
two answers are "the same" as the cache's default verifier says (normalised equal texts, or
MiniLM cosine >= 0.9 between the responses), and a hit is wrong when the intents differ:
``SemanticMatcher``'s default compares only short answers (``label_words``), so a long response
agreeing only when equal and otherwise counting for nothing; ``label_words=None`` compares every
response with the verifier (the rule before). Beside
it: fixed 0.94 alone, and agreement on the intent labels (what bench_semantic_agreement.py
measures). Figures in benchmarks/RESULTS.md ("Neighbourhood agreement").

    OMP_NUM_THREADS=1 python benchmarks/bench_semantic_agreement_answers.py [--half test]
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import io
import random

from _semantic_data import data_file, embed_cached
from _semantic_streams import replay, shuffled, support_half
from thrifty.semantic.agreement import NeighbourhoodAgreement
from thrifty.semantic.pair_scorer import PairScorer
from thrifty.semantic.policy import FixedThreshold
from thrifty.semantic.thresholds import normalized_match

#: The cache's default answer check (``SemanticLayer.verifier``): embeddings this close agree.
ANSWER_BAR = 0.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", default="test", choices=("fit", "test"))
    parser.add_argument("--orders", type=int, default=3)
    args = parser.parse_args()
    raw = gzip.decompress(data_file("support/bitext_customer_support.csv.gz").read_bytes())
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
    keep = [i for i, r in enumerate(rows) if support_half(r["instruction"]) == args.half]
    queries = embed_cached("support", [r["instruction"] for r in rows])[keep]
    answers = embed_cached("support-responses", [r["response"] for r in rows])[keep]
    texts = [rows[i]["instruction"] for i in keep]
    responses = [rows[i]["response"] for i in keep]
    stream = (texts, [rows[i]["intent"] for i in keep], queries)
    scorer = PairScorer.default()
    every, default = NeighbourhoodAgreement(label_words=None), NeighbourhoodAgreement()
    print("| order | policy | hits | wrong share of hits |\n|---|---|---|---|")
    for seed in range(args.orders):
        order = list(range(len(texts)))
        random.Random(seed).shuffle(order)  # the order shuffled() gives the stream
        said = [responses[i] for i in order]
        vectors = answers[order]

        def same(a: int, b: int, said: list[str] = said, vectors=vectors) -> bool:
            if normalized_match(said[a], said[b]):
                return True
            return float(vectors[a] @ vectors[b]) >= ANSWER_BAR

        def compared(
            a: int, b: int, rule: NeighbourhoodAgreement, said: list[str] = said
        ) -> bool | None:  # what SemanticMatcher._agree makes of two cached answers
            return rule.compared(said[a], said[b], functools.partial(same, a, b))

        rows_of = {
            "fixed 0.94": {},
            "+ agreement, intent labels": {"agreement": default},
            "+ agreement, response texts, every difference a conflict": {
                "agreement": every,
                "same_answer": functools.partial(compared, rule=every),
            },
            "+ agreement, response texts (default: long answers agree only when equal)": {
                "agreement": default,
                "same_answer": functools.partial(compared, rule=default),
            },
        }
        for name, options in rows_of.items():
            r = replay(
                shuffled(stream, seed), FixedThreshold(0.94), guards=True, scorer=scorer, **options
            )
            hits, wrong = f"{r.hit_rate:.1%} ({r.hits})", f"{r.wrong_rate:.2%} ({r.wrong})"
            print(f"| {seed} | {name} | {hits} | {wrong} |")


if __name__ == "__main__":
    main()
