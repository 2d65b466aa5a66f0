"""Does compression change your model's answers? Ask it each question twice, with the whole
context and with the compressed one, and compare (``thrifty bench compress``).

Answer survival (benchmarks/bench_compress.py) says whether the answer's words were kept; only
the model that will read the context can say whether it still answers from it, and the local
model thrifty embeds is too weak to judge. So a team runs this with its own model and its own
RAG questions: each row is asked as-is and compressed, at the same temperature (0) and answer
length, and the two answers are compared with each other and, when the row gives them, with the
gold answers (SQuAD's normalised containment, as the survival benchmark counts them). The
figures that matter are the rows the compressed context lost (right with the whole context,
wrong without) beside those it gained, and the prompt tokens saved.

Rows are JSON lines ``{"question": ..., "context": <text or documents>, "answers": [...]}``
(``answers`` optional; documents as :data:`~thrifty.compression.compressor.Context` takes them),
or NQ's ``nq_open_oracle.jsonl.gz`` turned into RAG contexts by :func:`nq_rows`.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.compression.compressor import Compressor, Context
from thrifty.errors import ConfigError
from thrifty.providers.base import Provider
from thrifty.retry import RetryPolicy, call_with_retries

SYSTEM = (
    "Answer the question from the context. Reply with the shortest phrase that answers it, "
    "nothing else."
)


@dataclass(frozen=True, slots=True)
class Row:
    """One RAG question: its context and, when known, its gold answers."""

    question: str
    context: Context
    answers: tuple[str, ...] = ()


@dataclass(slots=True)
class Checked:
    """One row asked twice."""

    question: str
    answer_whole: str
    answer_compressed: str
    tokens_before: int
    tokens_after: int
    prompt_tokens_whole: int | None
    prompt_tokens_compressed: int | None
    same: bool
    """The two answers are equal once normalised."""
    f1: float
    """Token F1 between the two answers (SQuAD's measure)."""
    gold_whole: bool | None = None
    """The whole context's answer names a gold answer (None: the row has none)."""
    gold_compressed: bool | None = None


@dataclass(slots=True)
class Summary:
    """What compression did to the answers of every row."""

    rows: int
    ratio: float
    tokens_before: int
    tokens_after: int
    same: int
    mean_f1: float
    graded: int = 0
    """Rows with gold answers."""
    right_whole: int = 0
    right_compressed: int = 0
    lost: int = 0
    """Right with the whole context, wrong with the compressed one."""
    gained: int = 0
    prompt_tokens_whole: int | None = None
    prompt_tokens_compressed: int | None = None
    failed: int = 0
    """Rows whose model calls failed after retries (left out of every other figure)."""
    errors: list[str] = field(default_factory=list)

    @property
    def cut(self) -> float:
        return 1.0 - self.tokens_after / self.tokens_before if self.tokens_before else 0.0


def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, articles or extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_PUNCTUATION = frozenset(string.punctuation)


def token_f1(a: str, b: str) -> float:
    """SQuAD's token F1 between two answers (1.0 when both are empty)."""
    left, right = normalize(a).split(), normalize(b).split()
    if not left or not right:
        return float(left == right)
    common = sum((Counter(left) & Counter(right)).values())
    if not common:
        return 0.0
    precision, recall = common / len(left), common / len(right)
    return 2 * precision * recall / (precision + recall)


def names_gold(answer: str, answers: Sequence[str]) -> bool:
    """``answer`` contains one of the gold ``answers`` (normalised)."""
    said = normalize(answer)
    return any(gold and gold in said for gold in map(normalize, answers))


def load_rows(path: Path, limit: int | None = None) -> list[Row]:
    """Rows from a JSON-lines file; a malformed line is a :class:`ConfigError` naming it."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows: list[Row] = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not JSON ({exc.msg})") from exc
            rows.append(_row(raw, f"{path}:{number}"))
    return rows


def _row(raw: Any, where: str) -> Row:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a row must be a JSON object")
    question, context, answers = raw.get("question"), raw.get("context"), raw.get("answers", [])
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{where}: 'question' must be a non-empty string")
    if not isinstance(context, str | list) or not context:
        raise ConfigError(f"{where}: 'context' must be a text or a list of documents")
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ConfigError(f"{where}: 'answers' must be a list of strings")
    return Row(question, context, tuple(answers))


def nq_rows(
    path: Path, compressor: Compressor, *, limit: int, documents: int = 20, seed: int = 0
) -> list[Row]:
    """RAG rows from NQ's ``nq_open_oracle.jsonl.gz``: each question's gold passage among the
    ``documents - 1`` other questions' passages most similar to it by ``compressor``'s embedder
    (hard distractors, as a dense retriever returns them), those containing one of its answers
    left out; the gold passage's position is drawn with ``seed``."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        raw = [json.loads(line) for line in fh]
    passages = [next(c for c in r["ctxs"] if c.get("isgold")) for r in raw]
    vectors = compressor.embedder.embed([f"{p['title']}. {p['text']}" for p in passages])
    rng = np.random.default_rng(seed)
    rows: list[Row] = []
    for i in rng.permutation(len(raw))[:limit].tolist():
        question, answers = raw[i]["question"], raw[i]["answers"]
        near = np.argsort(-(vectors @ compressor.embedder.embed_one(question)), kind="stable")
        others = (int(j) for j in near if j != i)  # nearest first, read only as far as needed
        clean = (j for j in others if not names_gold(passages[j]["text"], answers))
        picked = list(itertools.islice(clean, documents - 1))
        gold = int(rng.integers(0, len(picked) + 1))
        picked.insert(gold, i)
        docs = [{"title": passages[j]["title"], "text": passages[j]["text"]} for j in picked]
        rows.append(Row(question, docs, tuple(answers)))
    return rows


def _context_text(context: Context) -> str:
    if isinstance(context, str):
        return context
    parts = []
    for doc in context:
        if isinstance(doc, str):
            parts.append(doc)
        else:
            title = doc.get("title")
            parts.append(f"{title}\n{doc['text']}" if title else str(doc["text"]))
    return "\n\n".join(parts)


def _body(model: str | None, question: str, context: str, max_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"},
        ],
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    if model:
        body["model"] = model
    return body


async def _ask(
    provider: Provider, body: dict[str, Any], retries: RetryPolicy
) -> tuple[str, int | None]:
    answer = await call_with_retries(lambda: provider.chat(body), retries)
    text = answer["choices"][0]["message"].get("content") or ""
    usage = answer.get("usage") or {}
    return text.strip(), usage.get("prompt_tokens")


async def check(
    rows: Sequence[Row],
    provider: Provider,
    compressor: Compressor,
    *,
    ratio: float,
    model: str | None = None,
    max_tokens: int = 32,
    concurrency: int = 4,
    retries: RetryPolicy | None = None,
    progress: Callable[[], None] | None = None,
) -> tuple[list[Checked], Summary]:
    """Ask every row with its whole and its compressed context; compare the answers.

    Calls run ``concurrency`` at a time and are retried on 429/5xx (``Retry-After``
    honoured); a row whose calls still fail is counted in ``Summary.failed`` and left out.
    """
    retries = retries or RetryPolicy(num_retries=4, base_delay=1.0, max_delay=30.0)
    gate = asyncio.Semaphore(max(1, concurrency))
    summary = Summary(len(rows), ratio, 0, 0, 0, 0.0)

    async def one(row: Row) -> Checked | None:
        kept = compressor.compress(row.question, row.context, ratio=ratio)
        whole = _context_text(row.context)
        compressed = kept.text if isinstance(row.context, str) else _kept_text(row, kept)
        try:
            async with gate:
                (a, pa), (b, pb) = await asyncio.gather(
                    _ask(provider, _body(model, row.question, whole, max_tokens), retries),
                    _ask(provider, _body(model, row.question, compressed, max_tokens), retries),
                )
        except Exception as exc:
            summary.errors.append(f"{row.question[:60]!r}: {type(exc).__name__}: {exc}")
            return None
        finally:
            if progress is not None:
                progress()
        graded = bool(row.answers)
        return Checked(
            question=row.question,
            answer_whole=a,
            answer_compressed=b,
            tokens_before=kept.tokens_before,
            tokens_after=kept.tokens_after,
            prompt_tokens_whole=pa,
            prompt_tokens_compressed=pb,
            same=normalize(a) == normalize(b),
            f1=token_f1(a, b),
            gold_whole=names_gold(a, row.answers) if graded else None,
            gold_compressed=names_gold(b, row.answers) if graded else None,
        )

    results = [r for r in await asyncio.gather(*(one(row) for row in rows)) if r is not None]
    _summarise(summary, results)
    return results, summary


def _kept_text(row: Row, kept: Any) -> str:
    """The compressed documents joined as :func:`_context_text` joins the whole ones (titles
    kept: the model reads them in both prompts)."""
    assert not isinstance(row.context, str)
    docs = []
    for doc, out in zip(row.context, kept.documents, strict=True):
        if not out.text:
            continue
        title = doc.get("title") if isinstance(doc, Mapping) else None
        docs.append({"title": title, "text": out.text} if title else out.text)
    return _context_text(docs)


def _summarise(summary: Summary, results: Iterable[Checked]) -> None:
    done = list(results)
    summary.failed = summary.rows - len(done)
    summary.tokens_before = sum(r.tokens_before for r in done)
    summary.tokens_after = sum(r.tokens_after for r in done)
    summary.same = sum(r.same for r in done)
    summary.mean_f1 = float(np.mean([r.f1 for r in done])) if done else 0.0
    graded = [r for r in done if r.gold_whole is not None]
    summary.graded = len(graded)
    summary.right_whole = sum(bool(r.gold_whole) for r in graded)
    summary.right_compressed = sum(bool(r.gold_compressed) for r in graded)
    summary.lost = sum(bool(r.gold_whole) and not r.gold_compressed for r in graded)
    summary.gained = sum(bool(r.gold_compressed) and not r.gold_whole for r in graded)
    usage = [r for r in done if r.prompt_tokens_whole is not None]
    if usage and len(usage) == len(done):
        summary.prompt_tokens_whole = sum(r.prompt_tokens_whole or 0 for r in usage)
        summary.prompt_tokens_compressed = sum(r.prompt_tokens_compressed or 0 for r in usage)


def write(out: Path, results: Sequence[Checked], summary: Summary) -> None:
    """``results.jsonl`` (a line per row) and ``summary.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.jsonl").open("w", encoding="utf-8") as fh:
        for r in results:
            fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
    (out / "summary.json").write_text(
        json.dumps({**asdict(summary), "cut": summary.cut}, indent=2), encoding="utf-8"
    )
