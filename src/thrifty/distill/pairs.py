"""Teacher pairs: the (input, teacher answer) records a student learns from, as JSONL.

One JSON object per line: ``{"input": "...", "output": "..."}``. The input may also be a chat
(``"messages"``, the last user message is the input) so a file of recorded requests reads as
is. ``output`` may be missing or null in files that are only to be predicted.

:func:`export_openai` writes the same pairs in OpenAI's fine-tuning format
(``{"messages": [system?, user, assistant]}`` per line), so a team can also fine-tune a hosted
small model on what the teacher answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.errors import ConfigError
from thrifty.routing.features import prompt_text


@dataclass(frozen=True, slots=True)
class Pair:
    """One input and the answer the teacher gave to it (None where it is not known)."""

    input: str
    """The text the student sees (the last user message of a chat)."""
    output: str | None = None
    """The teacher's answer; a class for the student, so repeated answers are one class."""


def pair_of(record: Mapping[str, Any]) -> Pair:
    """The pair in one decoded line.

    Raises:
        ValueError: no ``input`` text or ``messages`` chat, or an output that is not text.
    """
    if isinstance(record.get("input"), str):
        text = record["input"]
    elif isinstance(record.get("messages"), list):
        text = prompt_text(record)
    else:
        raise ValueError("needs an 'input' (text) or 'messages' (a chat)")
    output = record.get("output")
    if output is not None and not isinstance(output, str):
        # Labels given as numbers (intent ids) are classes too; keep their text form.
        if isinstance(output, bool) or not isinstance(output, int | float):
            raise ValueError(f"'output' must be text, not {type(output).__name__}")
        output = str(output)
    return Pair(text, output)


def read_pairs(path: str | Path, *, require_output: bool = True) -> list[Pair]:
    """Every pair of a JSONL file, blank lines skipped.

    Raises:
        ConfigError: the file is missing, or a line is not a pair (its number is in the message),
            or ``require_output`` and a line has no teacher answer.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            pair = pair_of(json.loads(line))
        except (ValueError, AttributeError) as exc:
            raise ConfigError(f"{path}:{number}: not a pair: {exc}") from exc
        if require_output and pair.output is None:
            raise ConfigError(f"{path}:{number}: no 'output' (the teacher's answer)")
        pairs.append(pair)
    return pairs


def write_pairs(pairs: Iterable[Pair], path: str | Path) -> int:
    """Write ``{"input", "output"}`` lines; returns how many."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(json.dumps({"input": pair.input, "output": pair.output}) + "\n")
            count += 1
    return count


def openai_finetune_record(pair: Pair, system: str | None = None) -> dict[str, Any]:
    """One line of OpenAI's chat fine-tuning format for a pair with a teacher answer."""
    messages: list[dict[str, str | None]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": pair.input})
    messages.append({"role": "assistant", "content": pair.output})
    return {"messages": messages}


def export_openai(pairs: Iterable[Pair], path: str | Path, *, system: str | None = None) -> int:
    """Write the pairs that have a teacher answer as OpenAI fine-tuning JSONL; returns how many."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for pair in pairs:
            if pair.output is None:
                continue
            out.write(json.dumps(openai_finetune_record(pair, system)) + "\n")
            count += 1
    return count
