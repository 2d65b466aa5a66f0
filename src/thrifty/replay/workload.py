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

    kind: str  # "support", "rag", "mmlu", "intent" (banking77) or "chat" (arena-hard)
    klass: str
    question: str
    answer: str = ""
    """What the strong model answers: the support set's reference answer, GPT-4's banking77
    label, gpt-4-0314's arena-hard answer."""
    cheap_answer: str = ""
    """What the cheap model answers where the data records it (banking77: GPT-3.5's label;
    arena-hard: gpt-3.5-turbo-0125's answer); empty: the strong model's answer is served."""
    cheap_ok: bool = True
    """Chat: whether the cheap answer agrees with the strong one (:mod:`replay.streams`)."""
    system: str = ""
    """Intent: the classification prompt (the intents to choose from)."""
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
        if self.kind in ("mmlu", "chat"):
            return [{"role": "user", "content": self.question}]
        if self.kind == "intent":
            return [
                {"role": "system", "content": self.system},
                {"role": "user", "content": self.question},
            ]
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
            cheap_answer=r.get("cheap_answer", ""),
            system=r.get("system", ""),
        )
        for r in raw
    ]


def traffic(items: list[Item], requests: int, seed: int = 15, skew: float = 0.9) -> list[Item]:
    """``requests`` draws from ``items`` with repeats, item ``r`` weighted ``1/(r+1)**skew``."""
    weights = [1.0 / (rank + 1) ** skew for rank in range(len(items))]
    return random.Random(seed).choices(items, weights=weights, k=requests)
