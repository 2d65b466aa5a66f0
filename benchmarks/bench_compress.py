"""Context compression: does the answer survive the cut? thrifty.compress with MiniLM and with the
static embedder distilled from it (``thrifty.semantic.static``), beside LangChain's
EmbeddingsFilter (each embedder, threshold tuned on dev), a BM25-only selector and random
sentences, all at the same token ratio.

    python benchmarks/bench_compress.py                 # dev for tuning, report on test
    python benchmarks/bench_compress.py --limit 100     # quicker
    python benchmarks/bench_compress.py --tune          # grid the scoring weights on dev
    python benchmarks/bench_compress.py --timing-only   # speed only, both embedders interleaved

Contexts: ``_compress_data.py`` (NQ: gold passage + 19 hard distractors; SQuAD: paragraph + the
article's 4 most similar). Survival: NQ, a normalized answer string is in the kept text; SQuAD,
every unit covering the answer span is kept. Token counts are tiktoken (thrifty.accounting).
Contexts (the hard distractors) are chosen with MiniLM whichever embedder compresses, so both
embedders compress the same contexts. Speed: NQ test contexts, cold (empty document cache, no
embedding cache) and warm (documents seen before, the question still embedded).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compress_data import NQ_DOCS, NQ_FILE, Case, load_nq, load_squad, normalize, split_of
from thrifty.accounting.tokens import count_text
from thrifty.compression import Compressed, Compressor, DocumentCache, Weights
from thrifty.compression.analysis import Analysis
from thrifty.compression.answer_type import expected_kind
from thrifty.compression.compressor import DEFAULT_MIN_TOKENS, MINILM_OPTIONS, units_of
from thrifty.compression.lexical import bm25, forget_stems, terms
from thrifty.compression.scoring import Units, score
from thrifty.compression.select import select
from thrifty.semantic.base import Embedder
from thrifty.semantic.embedder import MiniLMEmbedder
from thrifty.semantic.static import StaticEmbedder
from thrifty.store import open_store

OUT = Path(__file__).resolve().parent / "out"

RATIOS = (0.4, 0.2)
METHODS = ("thrifty", "EmbeddingsFilter", "BM25 only", "random")


class Prepared:
    """A case with its document analyses and units, computed once for every method."""

    def __init__(self, case: Case, compressor: Compressor) -> None:
        self.case = case
        self.texts = [d["text"] for d in case.docs]
        #: Characters at the head of each document that do not count for survival (a title
        #: written into the text by --title-inline: an answer found there was not kept).
        self.skip = [len(d.get("inline_title", "")) for d in case.docs]
        self.docs: list[Analysis] = compressor.analyses(self.texts)
        self.before = sum(a.total for a in self.docs)
        titles = [d.get("title") for d in case.docs]
        self.units: Units = units_of(self.docs, compressor.embedder.dim, *compressor.titles(titles))
        self.spans = [(j, s, e) for j, a in enumerate(self.docs) for s, e in a.spans]
        self.qvec = compressor.embedder.embed_one(case.question)
        self.qterms = terms(case.question)
        self.expected = expected_kind(case.question)
        self.cosine = self.units.vectors @ self.qvec

    def target(self, ratio: float) -> int:
        return max(int(self.before * ratio), DEFAULT_MIN_TOKENS)

    def outcome(self, keep: np.ndarray) -> tuple[bool, int]:
        """(answer survived, tokens kept) for a keep mask over the units."""
        kept: list[list[str]] = [[] for _ in self.docs]
        for (j, s, e), k in zip(self.spans, keep.tolist(), strict=True):
            if k and e > self.skip[j]:
                kept[j].append(self.texts[j][max(s, self.skip[j]) : e])
        texts = [" ".join(parts) for parts in kept]
        return self.survived(texts, keep), sum(count_text(t) for t in texts)

    def survived(self, texts: Sequence[str], keep: np.ndarray) -> bool:
        case = self.case
        if case.span is None:
            joined = normalize(" ".join(texts))
            return any(normalize(a) in joined for a in case.answers if normalize(a))
        lo, hi = case.span
        return all(
            bool(k)
            for (j, s, e), k in zip(self.spans, keep.tolist(), strict=True)
            if j == case.gold and s < hi and e > lo
        )

    def mask_of(self, result: Compressed) -> np.ndarray:
        dropped = {(d.document, d.start, d.end) for d in result.dropped}
        return np.array([span not in dropped for span in self.spans], dtype=bool)


def ours(p: Prepared, ratio: float, compressor: Compressor) -> tuple[bool, int]:
    result = compressor.compress(p.case.question, p.case.docs, ratio=ratio)
    if any(p.skip):  # survival from the kept units past each inline title
        return p.outcome(p.mask_of(result))[0], result.tokens_after
    return p.survived([d.text for d in result.documents], p.mask_of(result)), result.tokens_after


def by_scores(p: Prepared, ratio: float, scores: np.ndarray) -> tuple[bool, int]:
    keep = select(
        scores,
        p.units.tokens,
        p.units.vectors,
        target=p.target(ratio),
        floor=DEFAULT_MIN_TOKENS,
        redundancy=1.0,
    )
    return p.outcome(keep)


def bm25_only(p: Prepared, ratio: float) -> tuple[bool, int]:
    return by_scores(p, ratio, bm25(p.qterms, p.units.terms, p.units.lengths))


def random_units(p: Prepared, ratio: float) -> tuple[bool, int]:
    seed = int.from_bytes(hashlib.sha256(p.case.question.encode()).digest()[:4], "little")
    return by_scores(p, ratio, np.random.default_rng(seed).random(len(p.spans)))


class LangChainEmbeddings:
    """A thrifty embedder behind LangChain's ``Embeddings`` interface (the same vectors).

    Units whose vectors the compressor's analyses already hold are served from them (the same
    model's output for the same text), so the filter is not charged a second embedding pass.
    """

    def __init__(self, embedder: Embedder, cases: Sequence[Prepared]) -> None:
        from langchain_core.embeddings import Embeddings

        known: dict[str, np.ndarray] = {}
        for p in cases:
            for (j, s, e), vector in zip(p.spans, p.units.vectors, strict=True):
                known[p.texts[j][s:e]] = vector

        class _Adapter(Embeddings):
            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                missing = [t for t in texts if t not in known]
                if missing:
                    known.update(zip(missing, embedder.embed(missing), strict=True))
                return [known[t].tolist() for t in texts]

            def embed_query(self, text: str) -> list[float]:
                return embedder.embed_one(text).tolist()

        self.embeddings = _Adapter()


def embeddings_filter(p: Prepared, threshold: float, lc: LangChainEmbeddings) -> tuple[bool, int]:
    """LangChain's EmbeddingsFilter over the same units, as documents, ``k`` set to all of them
    (its default 20 caps the kept units below the ratio compared, and ``k=None`` is read as
    that default in langchain-classic 1.0.8)."""
    from langchain_classic.retrievers.document_compressors import EmbeddingsFilter
    from langchain_core.documents import Document

    units = [
        Document(page_content=p.texts[j][s:e], metadata={"unit": i})
        for i, (j, s, e) in enumerate(p.spans)
    ]
    kept = EmbeddingsFilter(
        embeddings=lc.embeddings, similarity_threshold=threshold, k=len(units)
    ).compress_documents(units, p.case.question)
    keep = np.zeros(len(p.spans), dtype=bool)
    keep[[d.metadata["unit"] for d in kept]] = True
    return p.outcome(keep)


def tune_threshold(dev: Sequence[Prepared], ratio: float) -> float:
    """The similarity threshold whose mean kept-token share on dev is ``ratio`` (bisection on
    the same cosines EmbeddingsFilter computes)."""
    lo, hi = -1.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        share = np.mean(
            [p.units.tokens[p.cosine > mid].sum() / max(p.units.tokens.sum(), 1) for p in dev]
        )
        lo, hi = (mid, hi) if share > ratio else (lo, mid)
    return (lo + hi) / 2


def run_method(
    cases: Sequence[Prepared], fn: Callable[[Prepared], tuple[bool, int]]
) -> dict[str, float]:
    survived = kept = before = 0
    for p in cases:
        ok, tokens = fn(p)
        survived += ok
        kept += tokens
        before += p.before
    return {
        "survival": survived / len(cases),
        "before": before / len(cases),
        "after": kept / len(cases),
    }


def report(sets: dict[str, dict[str, dict[str, list[Prepared]]]], runs: dict[str, Any]) -> None:
    """``sets[embedder][set][split]``; ``runs[embedder] = (compressor, LangChain adapter)``."""
    print("\n### Answer survival on test (thresholds and weights from dev)\n")
    print("| set | ratio asked | method | answer survives | tokens before → after | cut |")
    print("|---|---|---|---|---|---|")
    first = next(iter(sets.values()))
    for name in first:
        for ratio in RATIOS:
            fns: dict[str, tuple[list[Prepared], Callable[[Prepared], tuple[bool, int]]]] = {}
            for emb, (compressor, _) in runs.items():
                splits = sets[emb][name]
                fns[f"thrifty ({emb})"] = (
                    splits["test"],
                    functools.partial(ours, ratio=ratio, compressor=compressor),
                )
            for emb, (_, lc) in runs.items():
                splits = sets[emb][name]
                threshold = tune_threshold(splits["dev"], ratio)
                fns[f"EmbeddingsFilter ({emb}, t={threshold:.3f})"] = (
                    splits["test"],
                    functools.partial(embeddings_filter, threshold=threshold, lc=lc),
                )
            tests = first[name]["test"]
            fns["BM25 only"] = (tests, functools.partial(bm25_only, ratio=ratio))
            fns["random"] = (tests, functools.partial(random_units, ratio=ratio))
            for method, (cases, fn) in fns.items():
                m = run_method(cases, fn)
                print(
                    f"| {name} ({len(cases)}) | {ratio} | {method} | "
                    f"{m['survival']:.1%} | {m['before']:.0f} → {m['after']:.0f} | "
                    f"{1 - m['after'] / m['before']:.1%} |"
                )


def tune(sets: dict[str, dict[str, list[Prepared]]]) -> None:
    """Grid the scoring weights on the dev splits of every set; the mean survival ranks them."""
    grid = itertools.product((0.5,), (0.1,), (0.5,), (0.4,), (0.6,), (0.0, 0.2, 0.4, 0.6, 0.8))
    rows = []
    for lexical, neighbour, document, document_lexical, title, answer_type in grid:
        w = Weights(
            lexical=lexical,
            neighbour=neighbour,
            document=document,
            document_lexical=document_lexical,
            title=title,
            answer_type=answer_type,
        )
        rates = []
        for splits in sets.values():
            for ratio in RATIOS:
                ok = 0
                for p in splits["dev"]:
                    keep = select(
                        score(p.qvec, p.qterms, p.units, w, p.expected),
                        p.units.tokens,
                        p.units.vectors,
                        target=p.target(ratio),
                        floor=DEFAULT_MIN_TOKENS,
                        redundancy=w.redundancy,
                    )
                    ok += p.survived([], keep) if p.case.span else p.outcome(keep)[0]
                rates.append(ok / len(splits["dev"]))
        rows.append((float(np.mean(rates)), rates, w))
    rows.sort(key=lambda r: -r[0])
    print("\n### Weights on dev (mean survival over sets × ratios; best first)\n")
    print(
        "| lexical | neighbour | document | document_lexical | title | answer_type | mean | "
        + " | ".join(f"{s} @{r}" for s in sets for r in RATIOS)
        + " |"
    )
    for mean, rates, w in rows[:12]:
        cells = " | ".join(f"{x:.1%}" for x in rates)
        print(
            f"| {w.lexical} | {w.neighbour} | {w.document} | {w.document_lexical} | {w.title} "
            f"| {w.answer_type} | {mean:.1%} | {cells} |"
        )


#: The embedders timed side by side: MiniLM with the compressor's settings
#: (``compressor.MINILM_OPTIONS``) and the static table distilled from it.
EMBEDDERS: dict[str, Callable[[], Embedder]] = {
    "MiniLM int8 (1 thread, batch 16)": lambda: MiniLMEmbedder(cache_size=0, **MINILM_OPTIONS),
    "static (distilled from MiniLM)": lambda: StaticEmbedder(cache_size=0),
}


def speed_cases(n: int, docs: int = NQ_DOCS) -> list[Case]:
    """NQ test questions, each with ``docs`` titled gold passages of other questions as its
    context (20 make ~2,150 tokens, 28 ~3,000, the issue's size): speed
    depends on the context's size, not on which passages fill it, so no similarity search (an
    embedding of every passage) is needed before timing."""
    with gzip.open(NQ_FILE, "rt") as fh:
        rows = [json.loads(line) for _, line in zip(range(2 * docs * n + 40), fh, strict=False)]
    golds = [next(c for c in r["ctxs"] if c.get("isgold")) for r in rows]
    passages = [{"title": g["title"], "text": g["text"]} for g in golds]
    tests = [i for i, r in enumerate(rows) if split_of(r["question"]) == "test"][:n]
    return [
        Case(rows[i]["question"], passages[k * docs : (k + 1) * docs], [], 0)
        for k, i in enumerate(tests)
    ]


def timing(cases: Sequence[Case], n: int) -> None:
    """ms per context: cold (nothing cached) and warm (documents cached, question embedded),
    as wall time and as this process's CPU time (on a shared machine the two differ), for each
    of :data:`EMBEDDERS`, interleaved context by context (the same machine state for both).
    The static embedder keeps the token sums of words it has seen, and BM25 the stems; "cold,
    new words" times it with both emptied before each context as well (a process's first
    context)."""
    compressors = {
        name: Compressor(make(), cache=DocumentCache()) for name, make in EMBEDDERS.items()
    }
    for compressor in compressors.values():
        compressor.compress("warm up the session", cases[0].docs, ratio=0.4)
    rows: dict[tuple[str, str], list[float]] = {}
    tokens = []
    paths = {"cold": False, "warm": False, "cold, new words": True}
    for case in cases[:n]:
        for name, compressor in compressors.items():
            for label, forget_words in paths.items():
                if label.startswith("cold"):
                    compressor.cache.clear()
                if forget_words:
                    if not isinstance(compressor.embedder, StaticEmbedder):
                        continue
                    compressor.embedder.forget_words()
                    forget_stems()
                wall, cpu = time.perf_counter(), time.process_time()
                result = compressor.compress(case.question, case.docs, ratio=0.4)
                rows.setdefault((name, f"{label} wall"), []).append(
                    (time.perf_counter() - wall) * 1000
                )
                rows.setdefault((name, f"{label} cpu"), []).append(
                    (time.process_time() - cpu) * 1000
                )
        tokens.append(result.tokens_before)
    print(f"\n### Speed, {n} NQ test contexts, {statistics.median(tokens):.0f} tokens p50\n")
    print("| embedder | path | p50 ms | p90 ms |\n|---|---|---|---|")
    for (name, path), ms in rows.items():
        p90 = statistics.quantiles(ms, n=10)[-1]
        print(f"| {name} | {path} | {statistics.median(ms):.2f} | {p90:.2f} |")
    first, second = list(EMBEDDERS)
    for path in ("cold wall", "cold cpu", "warm wall", "warm cpu"):
        ratio = statistics.median(rows[(first, path)]) / statistics.median(rows[(second, path)])
        print(f"{path}: static {ratio:.1f}x faster than MiniLM (p50)")
    print(f"\n(load average {', '.join(f'{x:.1f}' for x in os.getloadavg())})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=300, help="questions per set and split")
    parser.add_argument(
        "--timing", type=int, default=40, help="contexts timed cold and warm (0: none)"
    )
    parser.add_argument(
        "--timing-docs", type=int, default=NQ_DOCS, help="passages per timed context (28: ~3k)"
    )
    parser.add_argument("--tune", action="store_true", help="grid the weights on dev and stop")
    parser.add_argument(
        "--no-titles", action="store_true", help="NQ passages without their titles (plain text)"
    )
    parser.add_argument(
        "--title-inline",
        action="store_true",
        help="NQ passages as one text, 'title\\ntext' (an answer found only in the title does "
        "not count as kept)",
    )
    parser.add_argument("--timing-only", action="store_true", help="only the speed table")
    parser.add_argument(
        "--embedders", default="MiniLM,static", help="compressors compared (MiniLM, static)"
    )
    parser.add_argument(
        "--store",
        default=f"sqlite:///{OUT / 'compress_docs.db'}",
        help="thrifty store that keeps document analyses between runs ('' for memory only)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    if args.timing_only:
        timing(speed_cases(args.timing, args.timing_docs), args.timing)
        return
    minilm = MiniLMEmbedder(cache_size=200_000)
    OUT.mkdir(parents=True, exist_ok=True)
    store = open_store(args.store) if args.store else None
    chooser = Compressor(minilm, cache=DocumentCache(max_bytes=1 << 30, store=store))
    loaded = {"NQ": load_nq(chooser)}
    loaded["SQuAD"] = load_squad(chooser)
    if args.no_titles or args.title_inline:  # what a caller that passes bare strings gets
        for case in loaded["NQ"]:
            for doc in case.docs:
                title = doc.pop("title", None)
                if args.title_inline and title:
                    doc["inline_title"] = f"{title}\n"
                    doc["text"] = doc["inline_title"] + doc["text"]
    compressors = {"MiniLM": chooser}
    if "static" in args.embedders:
        static = StaticEmbedder(cache_size=200_000)
        compressors["static"] = Compressor(static, cache=DocumentCache(max_bytes=1 << 30))
    if "MiniLM" not in args.embedders:
        del compressors["MiniLM"]
    sets: dict[str, dict[str, dict[str, list[Prepared]]]] = {}
    for name, cases in loaded.items():
        by_split: dict[str, list[Case]] = {"dev": [], "test": []}
        for case in cases:
            by_split[split_of(case.question)].append(case)
        for emb, compressor in compressors.items():
            sets.setdefault(emb, {})[name] = {
                split: [Prepared(c, compressor) for c in rows[: args.limit]]
                for split, rows in by_split.items()
            }
        print(
            f"{name}: {len(cases)} questions; dev {len(by_split['dev'])}, test "
            f"{len(by_split['test'])}; using {args.limit} of each"
        )
    print(f"(prepared in {time.perf_counter() - started:.0f} s)")
    if args.tune:
        for emb, by_set in sets.items():
            print(f"\n## {emb}")
            tune(by_set)
        return
    runs: dict[str, Any] = {}
    for emb, compressor in compressors.items():
        every = [p for splits in sets[emb].values() for cases in splits.values() for p in cases]
        runs[emb] = (compressor, LangChainEmbeddings(compressor.embedder, every))
    report(sets, runs)
    if args.timing > 0:  # --timing 0: quality only
        nq_test = [c for c in loaded["NQ"] if split_of(c.question) == "test"]
        timing(nq_test, args.timing)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
