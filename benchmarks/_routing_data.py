"""Routing outcome data for the router benchmarks (not a benchmark itself): RouteLLM's MMLU and
GSM8K prompts with Mixtral-8x7B-Instruct / GPT-4-1106 correctness, split dev/test by a hash.

The split is fixed: sha256 of the prompt, first byte < 154 -> ``dev`` (60 %), else ``test``, as
the shared data README asks; everything learned (routers, thresholds, per-subject accuracies)
sees ``dev`` only, figures are reported on ``test``. Embeddings (thrifty's MiniLM) are cached
under ``benchmarks/out/emb/`` (gitignored).

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
from _semantic_data import data_file, embed_cached

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


def embeddings(task: str, rows: list[dict]) -> np.ndarray:
    """MiniLM vectors of the rows' prompts (cached)."""
    return embed_cached(f"routing-{task}", [r["prompt"] for r in rows])


if __name__ == "__main__":
    for name in FILES:
        embeddings(name, load_rows(name))
