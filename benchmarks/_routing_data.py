"""Routing outcome data for the router benchmarks (not a benchmark itself): RouteLLM's MMLU and
GSM8K prompts with Mixtral-8x7B-Instruct / GPT-4-1106 correctness, split dev/test by a hash.

The split is fixed: sha256 of the prompt, first byte < 154 -> ``dev`` (60 %), else ``test``, as
the shared data README asks; everything learned (routers, thresholds, per-subject accuracies)
sees ``dev`` only, figures are reported on ``test``. Embeddings (MiniLM or the static table) are
cached under ``benchmarks/out/emb/`` (gitignored).

    python benchmarks/_routing_data.py      # pre-compute the embeddings
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_data import OUT, data_file, embed_cached

FILES = {
    "mmlu": "routing/mmlu_mixtral_gpt4.jsonl.gz",
    "gsm8k": "routing/gsm8k_mixtral_gpt4.jsonl.gz",
}


def split_of(prompt: str) -> str:
    """``dev`` when the first byte of sha256(prompt) is below 154 (60 %), else ``test``."""
    return "dev" if hashlib.sha256(prompt.encode("utf-8")).digest()[0] < 154 else "test"


def load_rows(task: str) -> list[dict]:
    """Every row of ``task`` with its ``split`` added, in file order."""
    with gzip.open(data_file(FILES[task]), "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    for row in rows:
        row["split"] = split_of(row["prompt"])
    return rows


#: Feature embedders a router can be measured with (``bench_router.py --embedders``).
EMBEDDERS = ("minilm", "static")


def embeddings(task: str, rows: list[dict], embedder: str = "minilm") -> np.ndarray:
    """Vectors of the rows' prompts (cached under ``benchmarks/out/emb/``): MiniLM (384
    dimensions), or the static table distilled from it (256; ``thrifty embedder build-static``)."""
    texts = [r["prompt"] for r in rows]
    if embedder == "minilm":
        return embed_cached(f"routing-{task}", texts)
    if embedder != "static":
        raise SystemExit(f"unknown embedder {embedder!r}: use one of {', '.join(EMBEDDERS)}")
    from thrifty.semantic.static import StaticEmbedder

    model = StaticEmbedder(cache_size=0)
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]
    path = OUT / "emb" / f"routing-{task}-{model.name.replace(':', '-')}-{digest}.npy"
    if path.is_file():
        return np.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vectors = np.asarray(model.embed(texts), dtype=np.float32)
    np.save(path, vectors)
    return vectors


if __name__ == "__main__":
    for name in FILES:
        for model in EMBEDDERS:
            embeddings(name, load_rows(name), model)
