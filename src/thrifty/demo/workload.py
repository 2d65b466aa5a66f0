"""Streams of support questions for ``thrifty demo``: the shipped one, or the Bitext data set.

Both are deterministic for a seed. Each request knows whether its text was asked before in the
stream (an exact repeat, which an exact cache answers) or only its topic (a paraphrase, which
only a semantic cache could answer), so the report can say what each layer can catch.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from thrifty.errors import ConfigError

SHIPPED_FILE = "shop_questions.jsonl"
SUPPORT_FILE = Path("shared/data/support/bitext_customer_support.csv.gz")
DEFAULT_SEED = 7
#: Requests ``thrifty demo`` replays unless told (``--limit``): every miss is a real generation
#: of the local model (~1 s each on 2 quiet cores), and the README's first command (install and
#: demo) must finish within two minutes on a fresh machine. The shipped stream holds 166.
DEFAULT_DEMO_REQUESTS = 60
#: Exponent of the Zipf-like popularity used to sample the support data set.
ZIPF_EXPONENT = 1.0

SYSTEM_PROMPT = (
    "You are the customer-support assistant of Lumen & Loom, an online shop for home goods. "
    "Answer in one or two friendly sentences."
)


@dataclass(frozen=True, slots=True)
class DemoRequest:
    """One question of a replayed stream."""

    question: str
    topic: str
    """The question's equivalence class (shipped: its base question; support: its intent)."""
    kind: str
    """``new``, ``repeat`` (same text asked before) or ``paraphrase`` (same topic, new text)."""


@dataclass(frozen=True, slots=True)
class Workload:
    """A named, ordered stream of questions."""

    name: str
    description: str
    requests: tuple[DemoRequest, ...]

    def limited(self, limit: int | None) -> Workload:
        if limit is None:
            return self
        if limit < 1:
            raise ConfigError("--limit must be at least 1")
        return Workload(self.name, self.description, self.requests[:limit])

    def count(self, kind: str) -> int:
        return sum(1 for r in self.requests if r.kind == kind)

    @property
    def distinct(self) -> int:
        return len({r.question for r in self.requests})


def label(stream: Iterable[tuple[str, str]]) -> tuple[DemoRequest, ...]:
    """Mark each (question, topic) as new, an exact repeat or a paraphrase of an earlier one."""
    texts: set[str] = set()
    topics: set[str] = set()
    out = []
    for question, topic in stream:
        kind = "repeat" if question in texts else "paraphrase" if topic in topics else "new"
        texts.add(question)
        topics.add(topic)
        out.append(DemoRequest(question, topic, kind))
    return tuple(out)


def shipped_workload(seed: int = DEFAULT_SEED) -> Workload:
    """The questions written for thrifty's demo: an imaginary shop's support traffic.

    Each line of ``shop_questions.jsonl`` is a question with how often it is asked; a few lines
    are paraphrases of another. The stream holds every question that many times, shuffled with
    ``seed``.
    """
    text = resources.files(__package__).joinpath(SHIPPED_FILE).read_text(encoding="utf-8")
    stream: list[tuple[str, str]] = []
    for line in text.splitlines():
        row = json.loads(line)
        topic = row.get("paraphrase_of") or row["id"]
        stream.extend([(row["question"], topic)] * int(row["asked"]))
    random.Random(seed).shuffle(stream)
    return Workload(
        "shipped",
        "Lumen & Loom support questions written for thrifty (package data)",
        label(stream),
    )


def find_support_data(explicit: str | Path | None = None, roots: Sequence[Path] = ()) -> Path:
    """The Bitext support CSV: ``explicit``, else ``../shared/data/…`` from cwd or the repo.

    Raises:
        ConfigError: naming every path tried, when none exists.
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"support data file not found: {path}")
        return path
    repo_root = Path(__file__).resolve().parents[3]
    bases = [*roots, Path.cwd(), repo_root]
    tried = [(base / ".." / SUPPORT_FILE).resolve() for base in bases]
    for path in tried:
        if path.is_file():
            return path
    raise ConfigError(
        "support data set not found; looked for "
        + ", ".join(str(p) for p in dict.fromkeys(tried))
        + " (pass --data PATH, or use the shipped workload)"
    )


def support_data_available() -> bool:
    """Whether :func:`find_support_data` would find the data set without being told where."""
    try:
        find_support_data()
    except ConfigError:
        return False
    return True


def read_support_questions(path: Path) -> list[tuple[str, str]]:
    """(instruction, intent) rows of the Bitext customer-support CSV (plain or gzipped)."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    if not reader.fieldnames or not {"instruction", "intent"} <= set(reader.fieldnames):
        raise ConfigError(f"{path} has no 'instruction' and 'intent' columns")
    return [(row["instruction"].strip(), row["intent"]) for row in reader if row["instruction"]]


def support_workload(
    path: Path, requests: int = DEFAULT_DEMO_REQUESTS, seed: int = DEFAULT_SEED
) -> Workload:
    """``requests`` questions drawn with replacement from the data set's distinct instructions.

    Popularity follows a Zipf-like law over a seeded ranking (rank r drawn with weight
    ``1 / r**ZIPF_EXPONENT``), so some questions recur as they do in real support traffic.
    """
    if requests < 1:
        raise ConfigError("--limit must be at least 1")
    rows = list(dict.fromkeys(read_support_questions(path)))
    if not rows:
        raise ConfigError(f"{path} holds no questions")
    rng = random.Random(seed)
    rng.shuffle(rows)
    weights = [1 / (rank**ZIPF_EXPONENT) for rank in range(1, len(rows) + 1)]
    stream = rng.choices(rows, weights=weights, k=requests)
    return Workload(
        "support",
        f"Bitext customer-support questions from {path} (Zipf-like sample, seed {seed})",
        label(stream),
    )
