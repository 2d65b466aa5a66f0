"""Recorded outcomes a router learns from: "was the cheap answer good enough?".

One JSON object per line, the prompt as ``prompt`` (text) or ``messages`` (a chat), and either

- ``cheap_ok`` (true/false or 1/0), optionally ``strong_ok``: a labelled file, or feedback
  the gateway recorded (``POST /v1/thrifty/feedback``); or
- ``cheap_answer`` and ``strong_answer``: the label is their agreement (:func:`agree`), the strong
  model's answer taken as the reference.

- per-model correctness columns named on the command line (``--cheap-column mixtral_correct
  --strong-column gpt4_correct``), as in RouteLLM's evaluation data; ``--group-column subject``
  adds each prompt's group (MMLU's subject), which the ``grouped`` head learns from.

Example lines::

    {"prompt": "What is 2+2?", "cheap_ok": true}
    {"messages": [{"role": "user", "content": "Prove Fermat's little theorem"}], "cheap_ok": false}
    {"prompt": "Capital of France?", "cheap_answer": "Paris.", "strong_answer": "Paris"}
    {"prompt": "...", "mixtral_correct": true, "gpt4_correct": false}

Files may be gzipped (``.gz``). :func:`split_of` gives every prompt a fixed ``dev``/``test`` side
(sha256 of the prompt), so training and evaluation never share a prompt, whoever runs them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.errors import ConfigError
from thrifty.routing.features import prompt_text

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recorded request: its prompt text and how the models did."""

    text: str
    cheap_ok: bool
    strong_ok: bool | None = None
    #: The prompt's known group (an MMLU subject, a task type), when the file names one: a
    #: training signal for the ``grouped`` head only, never needed to route.
    group: str | None = None


def _normal(answer: Any) -> Any:
    if not isinstance(answer, str):
        return answer
    text = answer.strip()
    try:  # JSON answers agree when they hold the same data, whatever the spacing
        return json.loads(text)
    except ValueError:
        return _SPACE.sub(" ", text.lower()).rstrip(" .!")


def agree(cheap: Any, strong: Any) -> bool:
    """Whether two answers say the same: equal after trimming case, spacing and end
    punctuation, or equal as JSON."""
    return bool(_normal(cheap) == _normal(strong))


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise ValueError(f"{name} must be true/false or 1/0, not {value!r}")


#: Share of prompts on the ``dev`` side of :func:`split_of` (sha256 first byte below 154).
DEV_BYTE = 154
SPLITS = ("dev", "test")


def split_of(text: str) -> str:
    """``dev`` when the first byte of sha256(text) is below :data:`DEV_BYTE` (60 %), else
    ``test``: a fixed split that needs no stored field."""
    return "dev" if hashlib.sha256(text.encode("utf-8")).digest()[0] < DEV_BYTE else "test"


def outcome_of(
    record: Mapping[str, Any],
    cheap_column: str = "cheap_ok",
    strong_column: str = "strong_ok",
    group_column: str | None = None,
) -> Outcome:
    """The outcome in one decoded line (correctness in ``cheap_column``/``strong_column``, the
    prompt's group in ``group_column`` when given; a line without it has none).

    Raises:
        ValueError: no prompt, or neither the cheap column nor both answers.
    """
    if not isinstance(record.get("prompt"), str) and not isinstance(record.get("messages"), list):
        raise ValueError("needs a 'prompt' (text) or 'messages' (a chat)")
    text = prompt_text(record)
    strong = record.get(strong_column)
    strong_ok = None if strong is None else _flag(strong, strong_column)
    raw_group = record.get(group_column) if group_column else None
    group = None if raw_group is None else str(raw_group)
    if cheap_column in record:
        return Outcome(text, _flag(record[cheap_column], cheap_column), strong_ok, group)
    if "cheap_answer" in record and "strong_answer" in record:
        cheap_ok = agree(record["cheap_answer"], record["strong_answer"])
        return Outcome(text, cheap_ok, strong_ok, group)
    raise ValueError(f"needs {cheap_column!r}, or both 'cheap_answer' and 'strong_answer'")


def load_outcomes(
    path: str | Path,
    *,
    cheap_column: str = "cheap_ok",
    strong_column: str = "strong_ok",
    group_column: str | None = None,
    split: str | None = None,
) -> list[Outcome]:
    """Every outcome in a JSONL(.gz) file (blank lines skipped), or those of one ``split``.

    Raises:
        ConfigError: naming the file and line, when it is missing or a line is invalid.
    """
    file = Path(path)
    if split is not None and split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of: {', '.join(SPLITS)}")
    try:
        raw = file.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip
            raw = gzip.decompress(raw)
        lines = raw.decode("utf-8").splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"{file}: cannot read the outcomes file: {why}") from exc
    outcomes = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("each line must be a JSON object")
            outcome = outcome_of(record, cheap_column, strong_column, group_column)
        except ValueError as exc:
            raise ConfigError(f"{file}:{number}: {exc}") from exc
        if split is None or split_of(outcome.text) == split:
            outcomes.append(outcome)
    if not outcomes:
        raise ConfigError(f"{file}: no outcomes in the file" + (f" ({split})" if split else ""))
    return outcomes


def append_outcome(path: str | Path, text: str, cheap_ok: bool, **extra: Any) -> None:
    """Add one outcome line (the gateway's feedback), in the format :func:`load_outcomes` reads."""
    line = json.dumps({"prompt": text, "cheap_ok": cheap_ok, **extra}, ensure_ascii=False)
    with Path(path).open("a", encoding="utf-8") as out:
        out.write(line + "\n")
