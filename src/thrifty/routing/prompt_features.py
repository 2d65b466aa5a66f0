"""Cheap prompt features a learned router adds to the embedding: length, digits and maths, task
cues (multiple choice, code, a question), each scaled to about [0, 1].

MiniLM embeds what a prompt is about, not how hard it is: two questions on the same topic sit
close whatever their length or the arithmetic they need. These few numbers carry that, cost
microseconds, and need no fitted statistics (so a router file stays self-contained).
:data:`FEATURES` declares them once, in order; :func:`prompt_features` computes them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np

from thrifty.routing.features import looks_like_code

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_MATHS = re.compile(r"[=+*/^<>√∑∫π%]|\\frac|\\sqrt|\bmod\b|\blog\b|\bsin\b|\bcos\b")
_OPTIONS = re.compile(r"^\s*[A-D][.)]\s", re.MULTILINE)
_WORD = re.compile(r"\w+")
_QUESTION = re.compile(
    r"\b(what|which|who|whom|why|how|when|where|find|calculate|compute|solve|prove|determine|"
    r"evaluate|estimate)\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"\b(not|except|least|false|incorrect|never)\b", re.IGNORECASE)


def _log_scaled(value: float, top: float) -> float:
    return min(math.log1p(value) / math.log1p(top), 1.5)


def _lines(text: str) -> float:
    return _log_scaled(text.count("\n"), 60)


#: Feature name -> function of the prompt text, in vector order (declared once).
FEATURES: dict[str, Callable[[str], float]] = {
    "chars": lambda t: _log_scaled(len(t), 4000),
    "words": lambda t: _log_scaled(len(_WORD.findall(t)), 600),
    "lines": _lines,
    "numbers": lambda t: _log_scaled(len(_NUMBER.findall(t)), 40),
    "digit_share": lambda t: min(sum(c.isdigit() for c in t) / max(len(t), 1) * 5, 1.0),
    "maths": lambda t: _log_scaled(len(_MATHS.findall(t)), 30),
    "options": lambda t: min(len(_OPTIONS.findall(t)) / 4, 1.5),
    "question_words": lambda t: _log_scaled(len(_QUESTION.findall(t)), 10),
    "negation": lambda t: _log_scaled(len(_NEGATION.findall(t)), 5),
    "code": lambda t: float(looks_like_code(t)),
    "dollars": lambda t: _log_scaled(t.count("$"), 10),
    "percent": lambda t: _log_scaled(t.count("%"), 10),
}


def prompt_features(texts: Sequence[str]) -> np.ndarray:
    """``(len(texts), len(FEATURES))`` float32, one row per prompt."""
    out = np.empty((len(texts), len(FEATURES)), dtype=np.float32)
    for i, text in enumerate(texts):
        out[i] = [feature(text) for feature in FEATURES.values()]
    return out
