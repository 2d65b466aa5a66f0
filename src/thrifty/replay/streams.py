"""The replay's streams whose cheap-model answers are on record, so that routing's quality cost
is measured on them rather than assumed:

- ``intent``: banking77 customer-support messages classified by GPT-4 (the strong tier) and
  GPT-3.5 (the cheap tier), both prompted with representative examples (OCaTS's
  ``gpt-label`` and ``gpt35-label_rep`` columns); an answer is right when it is the gold intent.
- ``chat``: Chatbot Arena prompts (arena-hard-auto v0.1) answered by gpt-4-0314 (strong) and
  gpt-3.5-turbo-0125 (cheap), the real recorded answers. There is no judgement per prompt in
  the data, so the cheap answer is judged by its **agreement with the strong answer**: the
  cosine of their embeddings, against a bar set on ``dev`` prompts as the 5th percentile of the
  agreement between two strong models' answers (gpt-4-0613 with gpt-4-0314). A cheap answer
  below the bar counts as a wrong answer. This is a proxy, not a judge: it sees topic and
  content, not whether code runs or a proof holds.

:func:`load_items` assembles the whole workload (support, RAG, MMLU, intents, chat).
"""

from __future__ import annotations

import csv
import gzip
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.replay.workload import (
    Item,
    is_test,
    mmlu_items,
    rag_items,
    sample_items,
    support_items,
)
from thrifty.semantic.embedder import make_embedder

STRONG_CHAT = "gpt-4-0314"
SECOND_STRONG_CHAT = "gpt-4-0613"
CHEAP_CHAT = "gpt-3.5-turbo-0125"
#: Dev prompts the agreement bar is set on, and its quantile.
CALIBRATION_PROMPTS = 150
AGREEMENT_QUANTILE = 0.05


def intent_items(data: Path, limit: int) -> list[Item]:
    """banking77 ``test`` messages with GPT-4's and GPT-3.5's labels as the two tiers'
    answers (label numbers named through the gold labels of ``banking77/test.csv``)."""
    with (data / "banking77" / "test.csv").open(encoding="utf-8") as fh:
        gold = {r["text"]: r["category"] for r in csv.DictReader(fh)}
    with (data / "distill" / "banking77_test_llm_labels.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["text"] in gold]
    names = {r["label"]: gold[r["text"]] for r in rows}
    intents = sorted(set(gold.values()))
    system = (
        "Classify the bank customer's message into one of these intents and answer with the "
        "intent's name only: " + ", ".join(intents)
    )
    rows = [
        r for r in rows if r["gpt-label"] in names and r["gpt35-label_rep"] in names
    ]  # a label outside the 77 names (none expected) cannot be an answer
    random.Random(15).shuffle(rows)
    return [
        Item(
            "intent",
            gold[r["text"]],
            r["text"].strip(),
            answer=names[r["gpt-label"]],
            cheap_answer=names[r["gpt35-label_rep"]],
            system=system,
        )
        for r in rows[:limit]
    ]


def _answers(path: Path) -> dict[str, str]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        out = {}
        for line in lines:
            row = json.loads(line)
            out[row["uid"]] = str(row["messages"][-1]["content"]["answer"])
        return out


def agreement(embedder: Any, left: list[str], right: list[str]) -> np.ndarray:
    """Cosine of each pair of answers' embeddings."""
    a = np.asarray(embedder.embed(left), dtype=np.float32)
    b = np.asarray(embedder.embed(right), dtype=np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-12
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-12
    return np.asarray((a * b).sum(axis=1))


def chat_items(data: Path, limit: int, embedder: str = "minilm") -> tuple[list[Item], float]:
    """Arena-hard ``test`` prompts with the strong and cheap models' recorded answers, each
    cheap answer judged against the agreement bar; the items and the bar."""
    folder = data / "arena_hard"
    with (folder / "questions.jsonl").open(encoding="utf-8") as lines:
        prompts = {r["uid"]: (r["prompt"], r["cluster"]) for r in map(json.loads, lines)}
    strong = _answers(folder / f"{STRONG_CHAT}_answers.jsonl.gz")
    second = _answers(folder / f"{SECOND_STRONG_CHAT}_answers.jsonl.gz")
    cheap = _answers(folder / f"{CHEAP_CHAT}_answers.jsonl.gz")
    uids = sorted(u for u in prompts if u in strong and u in cheap)
    random.Random(15).shuffle(uids)
    dev = [u for u in uids if not is_test(prompts[u][0]) and u in second][:CALIBRATION_PROMPTS]
    test = [u for u in uids if is_test(prompts[u][0])][:limit]
    model = make_embedder(embedder)
    bar = float(
        np.quantile(
            agreement(model, [second[u] for u in dev], [strong[u] for u in dev]),
            AGREEMENT_QUANTILE,
        )
    )
    agree = agreement(model, [cheap[u] for u in test], [strong[u] for u in test])
    items = [
        Item(
            "chat",
            prompts[u][1],
            prompts[u][0],
            answer=strong[u],
            cheap_answer=cheap[u],
            cheap_ok=bool(score >= bar),
        )
        for u, score in zip(test, agree, strict=True)
    ]
    return items, bar


def load_items(
    data: Path | None,
    support: int = 150,
    rag: int = 50,
    mmlu: int = 0,
    intents: int = 0,
    chat: int = 0,
    embedder: str = "minilm",
) -> tuple[list[Item], str, dict[str, Any]]:
    """The items, where they came from (``shared data`` or ``shipped sample``) and notes for
    the report (the chat agreement bar)."""
    notes: dict[str, Any] = {}
    if data is not None and (data / "support").is_dir() and (data / "rag").is_dir():
        items = support_items(data, support) + rag_items(data, rag)
        if mmlu:
            items += mmlu_items(data, mmlu)
        if intents:
            items += intent_items(data, intents)
        if chat:
            chats, bar = chat_items(data, chat, embedder)
            items += chats
            notes["chat_agreement_bar"] = bar
        random.Random(16).shuffle(items)  # popularity is not by kind
        return items, f"shared data ({data})", notes
    return sample_items(), "shipped sample", notes
