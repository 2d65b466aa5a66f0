"""Prompt difficulty features for multiple-choice style prompts (question, then options
``A.``-``D.``): 26 numbers from regular expressions only, read by the ``stack`` router head.

Why: the subject of a prompt says how far the cheap model trails on average; these say how hard
*this* question is within its subject (arithmetic, negations, "Statement 1 | Statement 2" items,
passages, option lengths). On MMLU dev, a boosted model of the true subject prior plus these
beats the per-subject table by 3 points of GPT-4 share (benchmarks/RESULTS.md). No fitted
statistics, so a router file stays self-contained.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

_OPTION = re.compile(r"^([A-D])\.\s?(.*)$", re.MULTILINE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_ARITHMETIC = re.compile(r"[=+*/^×÷−-]\s*\d|\d\s*[=+*/^×÷−]")
_FORMULA = re.compile(r"\\[a-z]+|\$[^$]+\$|\^|_\{")
_NEGATION_CAPS = re.compile(r"\b(NOT|EXCEPT|LEAST|FALSE)\b")
_NEGATION = re.compile(r"\b(not|except|least|false|incorrect)\b", re.IGNORECASE)
_WHICH_NOT = re.compile(
    r"which of the following (is|are|would|does|was|were|could|can|statements?)?\s*"
    r"(not|least|false|incorrect)",
    re.IGNORECASE,
)
_STATEMENTS = re.compile(r"Statement 1\s*\|", re.IGNORECASE)
_ROMAN_ITEM = re.compile(r"^\s*(I|II|III|IV)\.\s", re.MULTILINE)
_ROMAN_OPTION = re.compile(r"\b(I and II|II and III|I and III|I, II|I only|II only|III only)\b")
_ALL_NONE = re.compile(r"\b(all of the above|none of the above|both|neither)\b", re.IGNORECASE)
_PASSAGE = re.compile(
    r"(refers to the following|following (passage|information|excerpt|text))", re.I
)
_TRUE_FALSE = re.compile(r"^(True|False),\s*(True|False)$", re.IGNORECASE)
_BLANK = re.compile(r"_{2,}|\(\s*\)")
_CODE = re.compile(r"[{};]\s*$|\bdef\b|\breturn\b|\bprint\b|\bfor\b\s*\(|==|!=|\bint\b", re.M)


def _log(value: float, top: float) -> float:
    return min(math.log1p(value) / math.log1p(top), 1.5)


def _numeric(option: str) -> bool:
    s = option.replace(",", "").replace("$", "").replace("%", "").strip()
    try:
        float(s.split()[0])
    except (ValueError, IndexError):
        return False
    return True


def difficulty_features(text: str) -> list[float]:
    """26 numbers of an MMLU-style prompt (question, then options ``A.``-``D.``)."""
    found = list(_OPTION.finditer(text))
    question = text[: found[-4].start()] if len(found) >= 4 else text
    options = [m.group(2).strip() for m in found[-4:]] if len(found) >= 4 else []
    sizes = [len(o) for o in options] or [0]
    lines = question.strip().split("\n")
    last, passage = lines[-1], "\n".join(lines[:-1])
    share = lambda pattern: sum(bool(pattern.search(o)) for o in options) / 4  # noqa: E731
    return [
        _log(len(question), 4000),
        _log(len(last), 600),
        _log(len(passage), 4000),
        _log(len(lines), 60),
        _log(float(np.mean(sizes)), 300),
        _log(max(sizes), 500),
        (max(sizes) - min(sizes)) / (max(sizes) + 1),
        sum(_numeric(o) for o in options) / 4,
        share(_NUMBER),
        _log(len(_NUMBER.findall(question)), 40),
        _log(sum(c.isdigit() for c in question), 200),
        _log(len(_ARITHMETIC.findall(text)), 20),
        _log(len(_FORMULA.findall(text)), 20),
        float(bool(_NEGATION_CAPS.search(question))),
        _log(len(_NEGATION.findall(last)), 4),
        float(bool(_WHICH_NOT.search(question))),
        float(bool(_STATEMENTS.search(question))),
        _log(len(_ROMAN_ITEM.findall(question)), 5),
        share(_ROMAN_OPTION),
        share(_ALL_NONE),
        float(bool(_PASSAGE.search(question))),
        sum(bool(_TRUE_FALSE.match(o)) for o in options) / 4,
        float(bool(_BLANK.search(question))),
        _log(len(_CODE.findall(text)), 10),
        float(last.rstrip().endswith("?")),
        _log(text.count("\n"), 60),
    ]


#: How many numbers :func:`difficulty_features` returns.
N_DIFFICULTY = 26


def difficulty_matrix(texts: Sequence[str]) -> np.ndarray:
    """``(len(texts), N_DIFFICULTY)`` float32, one row per prompt."""
    out = np.empty((len(texts), N_DIFFICULTY), dtype=np.float32)
    for i, text in enumerate(texts):
        out[i] = difficulty_features(text)
    return out
