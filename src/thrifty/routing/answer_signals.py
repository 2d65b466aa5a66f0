"""What a cheap model's own answer says about its quality, read from the text alone.

A cascade answers with the cheap model first and escalates when the answer looks unreliable. The
signals here need no second call (self-consistency would: it samples the cheap model again, which
recorded outcomes cannot replay) and no log-probabilities (:func:`mean_logprob` reads them when
the provider returns them):

- :func:`final_number`: the answer's final number (``#### 18``, ``the answer is 18``, else the
  last number); a maths answer without one has given up or rambled;
- :func:`arithmetic_errors`: worked steps that are wrong (``13 - 4 = 8``, ``<<9*2=19>>``),
  re-computed here;
- :func:`hedges`: wording that doubts itself (``however``, ``assuming``, ``I'm not sure``).

On GSM8K's Mixtral answers these separate right from wrong answers well (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

_NUM = r"-?\$?\d[\d,]*(?:\.\d+)?"
_FINAL = re.compile(r"####\s*(" + _NUM + r")")
_STATED = re.compile(r"\b(?:answer|result|total)\s+(?:is|=|:)\s*\**\s*(" + _NUM + ")", re.I)
_ANY = re.compile(_NUM)
#: ``<<expr=result>>`` calculator annotations (GSM8K style).
_ANNOTATED = re.compile(r"<<([^=<>]+)=([^<>]+)>>")
_ANNOTATED_STEP = re.compile(r"<<[^<>]*>>[\d.,]*")
#: ``a op b [op c …] = d`` written out in a step.
_WRITTEN = re.compile(
    r"((?:\$?\d[\d,]*(?:\.\d+)?\s*[-+*/x×]\s*)+\$?\d[\d,]*(?:\.\d+)?)\s*=\s*\$?(-?\d[\d,]*(?:\.\d+)?)"
)
#: Self-doubt, declared once (case-insensitive, whole words).
HEDGES = re.compile(
    r"\b(however|assum(?:e|ing|ption)|approximately|not sure|unclear|cannot be determined|"
    r"can't be determined|i think|it seems|wait|mistake|actually|re-?evaluate|round(?:ed|ing)?)\b",
    re.IGNORECASE,
)

_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("$", "").rstrip("."))
    except ValueError:
        return None


def marked(answer: str) -> bool:
    """Whether the answer states its result (``#### 18``, ``the answer is 18``)."""
    return bool(_FINAL.search(answer) or _STATED.search(answer))


def final_number(answer: str) -> float | None:
    """The answer's final number: after ``####``, else a stated answer, else the last number
    in the last 200 characters; None when there is none."""
    for pattern in (_FINAL, _STATED):
        found = pattern.findall(answer)
        if found:
            return _number(found[-1])
    tail = _ANY.findall(answer[-200:])
    return _number(tail[-1]) if tail else None


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return float(_OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right)))
    raise ValueError("not plain arithmetic")


def _calculate(expression: str) -> float | None:
    """``+ - * /`` and brackets over numbers; None for anything else (never ``eval``)."""
    cleaned = expression.replace(",", "").replace("$", "").replace("×", "*").replace("x", "*")
    if len(cleaned) > 80:
        return None
    try:
        return _evaluate(ast.parse(cleaned.strip(), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


def _wrong(expression: str, claimed: str) -> bool | None:
    value, stated = _calculate(expression), _number(claimed.strip())
    if value is None or stated is None:
        return None
    return not math.isclose(value, stated, rel_tol=1e-2, abs_tol=1e-2)


def arithmetic_errors(answer: str) -> tuple[int, int]:
    """(worked steps checked, steps that are wrong) in the answer."""
    checked = wrong = 0
    written = _ANNOTATED_STEP.sub(" ", answer)  # ``a * b = <<a*b=c>>c``: one step, not two
    for pattern, text in ((_ANNOTATED, answer), (_WRITTEN, written)):
        for expression, claimed in pattern.findall(text):
            verdict = _wrong(expression, claimed)
            if verdict is not None:
                checked += 1
                wrong += verdict
    return checked, wrong


def hedges(answer: str) -> int:
    """How many self-doubting phrases the answer has."""
    return len(HEDGES.findall(answer))


def mean_logprob(response: Mapping[str, Any]) -> float | None:
    """The mean token log-probability of the first choice, when the provider returned
    ``logprobs`` (chat: ``logprobs.content[].logprob``; completions: ``token_logprobs``)."""
    choices = response.get("choices") or []
    first = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    logprobs = first.get("logprobs")
    if not isinstance(logprobs, Mapping):
        return None
    values: list[Any] = []
    if isinstance(logprobs.get("content"), list):
        values = [t.get("logprob") for t in logprobs["content"] if isinstance(t, Mapping)]
    elif isinstance(logprobs.get("token_logprobs"), list):
        values = list(logprobs["token_logprobs"])
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    return sum(numbers) / len(numbers) if numbers else None


#: The answer features a learned cascade check reads, in order (declared once).
ANSWER_FEATURES = (
    "no_final",
    "unmarked",
    "checked",
    "wrong",
    "hedges",
    "length",
    "fraction",
    "lines",
)


def answer_features(answer: str) -> list[float]:
    """:data:`ANSWER_FEATURES` of one answer, each about [0, 1]."""
    final = final_number(answer)
    checked, wrong = arithmetic_errors(answer)
    return [
        float(final is None),
        float(not marked(answer)),
        min(checked / 10, 1.0),
        min(wrong, 3) / 3,
        min(hedges(answer), 3) / 3,
        min(math.log1p(len(answer)) / math.log1p(3000), 1.5),
        float(final is not None and not float(final).is_integer()),
        min(answer.count("\n") / 30, 1.0),
    ]
