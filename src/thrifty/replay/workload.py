"""The replay's workload: support questions and RAG requests, from the shared data when present
(``../shared/data``: the Bitext support set's questions and reference answers, Natural Questions
with its gold Wikipedia passage among distractors), else the small sample shipped beside this
module (``sample_workload.json``, written for this package).

A :class:`Item` is one distinct question; :func:`traffic` draws a stream of requests from the
items with repeats (a Zipf-like popularity, fixed seed), because real traffic repeats itself and
that is what caches live on.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).with_name("sample_workload.json")
SYSTEM_SUPPORT = "You are a customer support assistant. Answer the customer's request."
SYSTEM_RAG = "Answer the question from the context documents only. Quote the answer."


@dataclass(frozen=True, slots=True)
class Item:
    """One distinct question: its messages, its equivalence class (the support intent, or the
    NQ question) and what a correct answer is."""

    kind: str  # "support" or "rag"
    klass: str
    question: str
    answer: str = ""
    """The support set's reference answer (what the simulated model answers)."""
    gold: tuple[str, ...] = ()
    """RAG: the answer strings; an answer is right when it contains one of them."""
    contexts: tuple[str, ...] = field(default=())
    right_by: tuple[str, ...] = ()
    """MMLU: the models that answered it correctly in RouteLLM's data (``strong``, ``cheap``)."""

    def messages(self) -> list[dict[str, str]]:
        if self.kind == "rag":
            docs = "\n".join(
                f'<context id="d{i}">{text}</context>' for i, text in enumerate(self.contexts)
            )
            return [
                {"role": "system", "content": SYSTEM_RAG},
                {"role": "user", "content": f"{docs}\n\nQuestion: {self.question}"},
            ]
        if self.kind == "mmlu":
            return [{"role": "user", "content": self.question}]
        return [
            {"role": "system", "content": SYSTEM_SUPPORT},
            {"role": "user", "content": self.question},
        ]


def is_test(text: str) -> bool:
    """The data README's fixed split: sha256 first byte >= 154 is ``test``."""
    return hashlib.sha256(text.encode()).digest()[0] >= 154


def support_items(data: Path, limit: int) -> list[Item]:
    path = data / "support" / "bitext_customer_support.csv.gz"
    with gzip.open(path, "rb") as raw:
        rows = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))
    rows = [r for r in rows if is_test(r["instruction"])]
    random.Random(15).shuffle(rows)
    return [
        Item("support", r["intent"], r["instruction"].strip(), answer=r["response"].strip())
        for r in rows[:limit]
    ]


def rag_items(data: Path, limit: int, distractors: int = 4) -> list[Item]:
    path = data / "rag" / "nq_open_oracle.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    rows = [r for r in rows if is_test(r["question"])]
    random.Random(15).shuffle(rows)
    golds = [next(c["text"] for c in r["ctxs"] if c.get("isgold", True)) for r in rows]
    items = []
    for i, row in enumerate(rows[:limit]):
        others = [golds[(i + 1 + k * 7) % len(golds)] for k in range(distractors)]
        position = i % (distractors + 1)
        contexts = [*others[:position], golds[i], *others[position:]]
        items.append(
            Item(
                "rag",
                row["question"],
                row["question"],
                gold=tuple(row["answers"]),
                contexts=tuple(contexts),
            )
        )
    return items


def mmlu_items(data: Path, limit: int) -> list[Item]:
    """MMLU questions with whether GPT-4 (the strong model) and Mixtral (the cheap one) got
    them right: what routing a question down really costs in answers."""
    path = data / "routing" / "mmlu_mixtral_gpt4.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    rows = [r for r in rows if is_test(r["prompt"])]
    random.Random(15).shuffle(rows)
    return [
        Item(
            "mmlu",
            r["subject"],
            r["prompt"],
            right_by=tuple(
                m
                for m in ("strong", "cheap")
                if r["gpt4_correct" if m == "strong" else "mixtral_correct"]
            ),
        )
        for r in rows[:limit]
    ]


def sample_items() -> list[Item]:
    raw: list[dict[str, Any]] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    return [
        Item(
            r["kind"],
            r["klass"],
            r["question"],
            answer=r.get("answer", ""),
            gold=tuple(r.get("gold", ())),
            contexts=tuple(r.get("contexts", ())),
        )
        for r in raw
    ]


def load_items(
    data: Path | None, support: int = 150, rag: int = 50, mmlu: int = 0
) -> tuple[list[Item], str]:
    """The items and where they came from (``shared data`` or ``shipped sample``)."""
    if data is not None and (data / "support").is_dir() and (data / "rag").is_dir():
        items = support_items(data, support) + rag_items(data, rag)
        if mmlu:
            items += mmlu_items(data, mmlu)
        random.Random(16).shuffle(items)  # popularity is not by kind
        return items, f"shared data ({data})"
    return sample_items(), "shipped sample"


def traffic(items: list[Item], requests: int, seed: int = 15, skew: float = 0.9) -> list[Item]:
    """``requests`` draws from ``items`` with repeats, item ``r`` weighted ``1/(r+1)**skew``."""
    weights = [1.0 / (rank + 1) ** skew for rank in range(len(items))]
    return random.Random(seed).choices(items, weights=weights, k=requests)
