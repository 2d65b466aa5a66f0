"""Data loaders and cached embeddings for the semantic-cache benchmarks (not a benchmark itself).

Reads the shared benchmark data from ``../shared/data`` (or ``$THRIFTY_DATA``) and embeds texts
with thrifty's own :class:`~thrifty.semantic.embedder.MiniLMEmbedder`; vectors are cached under
``benchmarks/out/emb/`` (gitignored) keyed by a hash of the texts, so reruns skip the model.

    python benchmarks/_semantic_data.py     # pre-compute every embedding the benchmarks use
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
DATA = Path(os.environ.get("THRIFTY_DATA", ROOT.parent / "shared" / "data"))


def data_file(relative: str) -> Path:
    path = DATA / relative
    if not path.is_file():
        raise SystemExit(
            f"benchmark data file missing: {path} (set THRIFTY_DATA to the shared data folder)"
        )
    return path


#: Rows of each QQP split the benchmarks use (the first ones in file order, which is random with
#: respect to content): embedding all 80k pairs takes too long on a shared 2-core machine.
QQP_ROWS = {"dev": 12_000, "test": 10_000}


def load_qqp(split: str, limit: int | None = -1) -> list[dict]:
    """QQP rows ``{id, a, b, label, split}`` of ``dev`` or ``test``; the first
    ``QQP_ROWS[split]`` unless ``limit`` says otherwise (None: all)."""
    limit = QQP_ROWS[split] if limit == -1 else limit
    rows = []
    with gzip.open(data_file("qqp_pairs.jsonl.gz"), "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row["split"] == split:
                rows.append(row)
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def load_banking77(split: str = "test") -> list[tuple[str, str]]:
    """``(text, intent)`` in file order."""
    with data_file(f"banking77/{split}.csv").open(encoding="utf-8", newline="") as fh:
        return [(r["text"], r["category"]) for r in csv.DictReader(fh)]


def load_support() -> list[tuple[str, str]]:
    """Bitext support requests ``(instruction, intent)`` in file order."""
    raw = gzip.decompress(data_file("support/bitext_customer_support.csv.gz").read_bytes())
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    return [(r["instruction"], r["intent"]) for r in reader]


def load_mock_pairs() -> list[tuple[str, str]]:
    """GPTCache's 999 paraphrase pairs ``(origin, similar)``."""
    rows = json.loads(data_file("gptcache_mock/mock_data.json").read_text(encoding="utf-8"))
    return [(r["origin"], r["similar"]) for r in rows]


_EMBEDDER = None


def embedder():
    """thrifty's local MiniLM embedder (one instance per process, no text LRU)."""
    global _EMBEDDER
    if _EMBEDDER is None:
        from thrifty.semantic.embedder import MiniLMEmbedder

        # one intra-op thread: on a shared 2-core machine spinning worker threads lose more
        # than they gain
        _EMBEDDER = MiniLMEmbedder(cache_size=0, batch_size=32, threads=1)
    return _EMBEDDER


def embed_cached(
    name: str,
    texts: list[str],
    encoder: Callable[[], Callable[[list[str]], np.ndarray]] | None = None,
    *,
    batch: int = 4096,
) -> np.ndarray:
    """``(len(texts), dim)`` float32 vectors, from ``benchmarks/out/emb/`` when already computed.

    ``encoder`` makes the function that embeds a batch (default: the MiniLM embedder's); it is
    called only when the vectors are not on disk, so a model is loaded only when needed.
    """
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    path = OUT / "emb" / f"{name}-{digest}.npy"
    if path.is_file():
        return np.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    embed = encoder() if encoder is not None else embedder().embed
    started = time.perf_counter()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding per batch
    ordered = [texts[i] for i in order]
    vectors: np.ndarray | None = None
    for start in range(0, len(texts), batch):
        chunk = order[start : start + batch]
        part = np.asarray(embed(ordered[start : start + batch]), dtype=np.float32)
        if vectors is None:
            vectors = np.empty((len(texts), part.shape[1]), dtype=np.float32)
        vectors[chunk] = part
        done = start + len(chunk)
        if done % 4096 < batch or done == len(texts):
            print(f"{name}: {done}/{len(texts)}", file=sys.stderr, flush=True)
    assert vectors is not None, "no texts to embed"
    np.save(path, vectors)
    print(
        f"embedded {len(texts)} texts of {name} in {time.perf_counter() - started:.0f}s",
        file=sys.stderr,
    )
    return vectors


def qqp_vectors(rows: list[dict], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of the ``a`` and ``b`` side of each row (distinct texts embedded once)."""
    texts = sorted({r["a"] for r in rows} | {r["b"] for r in rows})
    vecs = embed_cached(name, texts)
    where = {t: i for i, t in enumerate(texts)}
    a = vecs[[where[r["a"]] for r in rows]]
    b = vecs[[where[r["b"]] for r in rows]]
    return a, b


if __name__ == "__main__":
    for split in ("test", "dev"):
        qqp_vectors(load_qqp(split), f"qqp-{split}")
    embed_cached("banking77-test", [t for t, _ in load_banking77("test")])
    embed_cached("support", [t for t, _ in load_support()])
    pairs = load_mock_pairs()
    embed_cached("mock", [o for o, _ in pairs] + [s for _, s in pairs])


def pair_similarities(rows: list[dict], name: str) -> np.ndarray:
    """Cosine of each row's ``a`` and ``b`` (thrifty's MiniLM, unit vectors)."""
    a, b = qqp_vectors(rows, name)
    return np.einsum("ij,ij->i", a, b)


def orient_pairs(rows: list[dict]) -> list[tuple[str, str]]:
    """``(cached, asked)`` for each pair: the question that appears in more pairs of these rows is
    the cached entry (ties: ``a``), so entries asked several times collect several outcomes."""
    degree: dict[str, int] = {}
    for r in rows:
        degree[r["a"]] = degree.get(r["a"], 0) + 1
        degree[r["b"]] = degree.get(r["b"], 0) + 1
    return [(r["b"], r["a"]) if degree[r["b"]] > degree[r["a"]] else (r["a"], r["b"]) for r in rows]
