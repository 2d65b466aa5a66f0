"""RAG contexts for benchmarks/bench_compress.py, built from ``../shared/data/rag/``.

Natural Questions: each question's gold passage at a random position among the 19 passages of
other questions most similar to it by MiniLM (hard distractors, as a dense retriever would return
them), each with its Wikipedia title as retrievers return it; passages that contain one of the
question's answers are not used as distractors, so a surviving answer comes from the gold passage.
SQuAD: each question's paragraph among the four paragraphs of the same article most similar to
the question (untitled: they share their article's title). Split by sha256 of the question:
first byte < 154 is ``dev`` (60 %), the rest ``test`` (shared/data/README.md).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thrifty.compression import Compressor
from thrifty.compression.answer_check import normalize  # SQuAD's answer normalisation

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "rag"
NQ_FILE = DATA / "nq_open_oracle.jsonl.gz"
SQUAD_FILE = DATA / "squad_dev_v1.1_subset.json.gz"
NQ_DOCS = 20
SQUAD_DOCS = 5


@dataclass(frozen=True, slots=True)
class Case:
    """One question with its context and how to tell whether its answer survived."""

    question: str
    docs: list[dict[str, str]]
    answers: list[str]
    gold: int
    """Index of the gold document in ``docs``."""
    span: tuple[int, int] | None = None
    """SQuAD: the answer's character span in the gold document."""


def split_of(question: str) -> str:
    """``dev`` or ``test``, by a hash of the question."""
    return "dev" if hashlib.sha256(question.encode()).digest()[0] < 154 else "test"


def _position(question: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(b"pos:" + question.encode()).digest()[:4], "little") % n


def _require(path: Path) -> None:
    if not path.is_file():
        raise SystemExit(f"benchmark data missing: {path} (see shared/data/README.md)")


def document_vectors(compressor: Compressor, texts: list[str]) -> np.ndarray:
    """One vector per document: the normalized mean of its sentences' vectors, from the same
    analyses the compressor caches (embedding whole passages again would double the work)."""
    rows = [a.vectors.mean(axis=0) for a in compressor.analyses(texts)]
    vectors = np.asarray(rows, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def load_nq(compressor: Compressor) -> list[Case]:
    """Every NQ question with a 20-passage context (gold + 19 hard distractors)."""
    _require(NQ_FILE)
    with gzip.open(NQ_FILE, "rt") as fh:
        rows = [json.loads(line) for line in fh]
    passages = [next(c for c in r["ctxs"] if c.get("isgold")) for r in rows]
    texts = [p["text"] for p in passages]
    questions = [r["question"] for r in rows]
    sims = compressor.embedder.embed(questions) @ document_vectors(compressor, texts).T
    normalized = [normalize(t) for t in texts]
    cases = []
    for i, row in enumerate(rows):
        answers = [normalize(a) for a in row["answers"] if normalize(a)]
        if not answers or not any(a in normalized[i] for a in answers):
            continue
        others: list[int] = []
        for j in np.argsort(-sims[i], kind="stable").tolist():
            if j != i and not any(a in normalized[j] for a in answers):
                others.append(j)
            if len(others) == NQ_DOCS - 1:
                break
        gold = _position(row["question"], NQ_DOCS)
        order = [*others[:gold], i, *others[gold:]]
        docs = [
            {"id": passages[j]["title"], "title": passages[j]["title"], "text": texts[j]}
            for j in order
        ]
        cases.append(Case(row["question"], docs, row["answers"], gold))
    return cases


def load_squad(compressor: Compressor) -> list[Case]:
    """Every SQuAD question with its paragraph among the article's four most similar to it."""
    _require(SQUAD_FILE)
    with gzip.open(SQUAD_FILE, "rt") as fh:
        articles = json.load(fh)["data"]
    cases = []
    for article in articles:
        paragraphs = [p["context"] for p in article["paragraphs"]]
        vectors = document_vectors(compressor, paragraphs)
        for k, para in enumerate(article["paragraphs"]):
            for qa in para["qas"]:
                if not qa["answers"]:
                    continue
                answer = qa["answers"][0]
                sims = vectors @ compressor.embedder.embed_one(qa["question"])
                ranked = [j for j in np.argsort(-sims, kind="stable").tolist() if j != k]
                others = ranked[: SQUAD_DOCS - 1]
                gold = _position(qa["question"], SQUAD_DOCS)
                order = [*others[:gold], k, *others[gold:]]
                docs = [{"id": f"{article['title']}:{j}", "text": paragraphs[j]} for j in order]
                start = int(answer["answer_start"])
                span = (start, start + len(answer["text"]))
                cases.append(Case(qa["question"], docs, [answer["text"]], gold, span))
    return cases
