"""Is a cheap answer usable? The checks that make a route cascade to its next model.

Each check reads the request and the answer and says yes or no; the first failing one names the
reason, which the gateway counts in ``thrifty_cascade_total{reason}``. An answer that calls tools
is judged by none of them. JSON schemas are checked with ``jsonschema`` (the ``server`` extra),
imported on first use.

The format checks (``empty``, ``refusal``, ``invalid_json``, ``schema_mismatch``) are on by
default (:data:`DEFAULT_CHECKS`). The others read the cheap model's own signal and are asked for
by name (``answer_signals.py``; measured on GSM8K in benchmarks/RESULTS.md): ``no_number`` (a
maths answer with no number), ``unmarked`` (no stated final answer), ``arithmetic`` (a worked
step is wrong), ``hedging`` (the answer doubts itself), ``regex`` (the answer does not match
:attr:`CheckOptions.pattern`) and ``low_logprob`` (mean token log-probability below
:attr:`CheckOptions.min_logprob`, when the provider returned log-probs).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thrifty.errors import ConfigError
from thrifty.routing.answer_signals import (
    arithmetic_errors,
    final_number,
    hedges,
    marked,
    mean_logprob,
)

log = logging.getLogger("thrifty.routing")


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """The parameters of the checks that take one.

    Attributes:
        pattern: ``regex``: an answer must match it (``re.search``) to be kept.
        min_logprob: ``low_logprob``: answers whose mean token log-probability is below it go on.
    """

    pattern: str | None = None
    min_logprob: float | None = None

    def compiled(self) -> re.Pattern[str] | None:
        return _compiled(self.pattern) if self.pattern else None


#: No parameters: ``regex`` and ``low_logprob`` unused.
NO_OPTIONS = CheckOptions()
_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(pattern)
    return _PATTERNS[pattern]


#: How refusals start (case-insensitive, within the first 300 characters). Declared as data.
REFUSAL_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^\W*(i'?m|i am)\s+(so\s+|very\s+)?sorry,?\s+(but\s+)?(i|we)\s+(can'?t|cannot|won'?t|"
        r"am\s+(not\s+able|unable)|'m\s+(not\s+able|unable))",
        r"^\W*i\s+(can'?t|cannot|won'?t|am\s+unable\s+to|'m\s+unable\s+to|am\s+not\s+able\s+to)\s+"
        r"(help|assist|comply|provide|do\s+that|answer|fulfil)",
        r"^\W*as\s+an\s+ai(\s+language\s+model)?,?\s+i\s+(can'?t|cannot|am\s+unable|don'?t)",
        r"^\W*(unfortunately,?\s+)?i('?m|\s+am)\s+(not\s+able|unable)\s+to\s+"
        r"(help|assist|comply|provide|answer)",
    )
)


def _choice(response: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = response.get("choices") or [{}]
    first = choices[0]
    return first if isinstance(first, Mapping) else {}


def answer_text(response: Mapping[str, Any]) -> str | None:
    """The first choice's text (chat ``message.content`` or completion ``text``)."""
    choice = _choice(response)
    message = choice.get("message")
    if isinstance(message, Mapping):
        content = message.get("content")
        if isinstance(content, list):
            return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        return content if isinstance(content, str) else None
    text = choice.get("text")
    return text if isinstance(text, str) else None


def _calls_tools(response: Mapping[str, Any]) -> bool:
    message = _choice(response).get("message")
    return isinstance(message, Mapping) and bool(
        message.get("tool_calls") or message.get("function_call")
    )


def _json_format(body: Mapping[str, Any]) -> str | None:
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    return kind if kind in ("json_object", "json_schema") else None


def _is_empty(body: Mapping[str, Any], response: Mapping[str, Any]) -> bool:
    text = answer_text(response)
    return text is None or not text.strip()


def _is_refusal(body: Mapping[str, Any], response: Mapping[str, Any]) -> bool:
    message = _choice(response).get("message")
    if isinstance(message, Mapping) and message.get("refusal"):
        return True
    head = (answer_text(response) or "")[:300]
    return any(pattern.search(head) for pattern in REFUSAL_PATTERNS)


def _parsed(response: Mapping[str, Any]) -> tuple[bool, Any]:
    try:
        return True, json.loads(answer_text(response) or "")
    except ValueError:
        return False, None


def _is_invalid_json(body: Mapping[str, Any], response: Mapping[str, Any]) -> bool:
    return _json_format(body) is not None and not _parsed(response)[0]


def _schema_of(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    fmt = body.get("response_format")
    spec = fmt.get("json_schema") if isinstance(fmt, Mapping) else None
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    return schema if isinstance(schema, Mapping) else None


def _breaks_schema(body: Mapping[str, Any], response: Mapping[str, Any]) -> bool:
    schema = _schema_of(body)
    ok, value = _parsed(response)
    if schema is None or not ok:
        return False
    try:
        import jsonschema
    except ImportError:  # fail-open: without the checker, a parsed answer passes
        log.warning(
            "jsonschema is not installed: JSON schemas are not checked "
            "(pip install 'thrifty[server]')"
        )
        return False
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return True
    except jsonschema.SchemaError:  # the client's schema itself is broken: not the model's fault
        return False
    return False


def _text(response: Mapping[str, Any]) -> str:
    return answer_text(response) or ""


def _no_number(body: Mapping[str, Any], response: Mapping[str, Any], o: CheckOptions) -> bool:
    return final_number(_text(response)) is None


def _unmarked(body: Mapping[str, Any], response: Mapping[str, Any], o: CheckOptions) -> bool:
    return not marked(_text(response))


def _arithmetic(body: Mapping[str, Any], response: Mapping[str, Any], o: CheckOptions) -> bool:
    return arithmetic_errors(_text(response))[1] > 0


def _hedging(body: Mapping[str, Any], response: Mapping[str, Any], o: CheckOptions) -> bool:
    return hedges(_text(response)) > 0


def _no_match(body: Mapping[str, Any], response: Mapping[str, Any], o: CheckOptions) -> bool:
    pattern = o.compiled()
    return pattern is not None and pattern.search(_text(response)) is None


def _low_logprob(body: Mapping[str, Any], response: Mapping[str, Any], o: CheckOptions) -> bool:
    mean = mean_logprob(response)  # none returned: nothing to judge by
    return o.min_logprob is not None and mean is not None and mean < o.min_logprob


Check = Callable[[Mapping[str, Any], Mapping[str, Any], CheckOptions], bool]


def _plain(check: Callable[[Mapping[str, Any], Mapping[str, Any]], bool]) -> Check:
    return lambda body, response, options: check(body, response)


#: Checks by reason, in the order they are tried (strategies as data).
CHECKS: dict[str, Check] = {
    "empty": _plain(_is_empty),
    "refusal": _plain(_is_refusal),
    "invalid_json": _plain(_is_invalid_json),
    "schema_mismatch": _plain(_breaks_schema),
    "no_number": _no_number,
    "unmarked": _unmarked,
    "arithmetic": _arithmetic,
    "hedging": _hedging,
    "regex": _no_match,
    "low_logprob": _low_logprob,
}
#: The checks a route runs unless told otherwise: the answer's format only.
DEFAULT_CHECKS = ("empty", "refusal", "invalid_json", "schema_mismatch")


def check_options_for(reasons: Sequence[str], options: CheckOptions) -> CheckOptions:
    """``options``, once checked against ``reasons``.

    Raises:
        ConfigError: an unknown check, ``regex`` without a valid pattern, or ``low_logprob``
            without a minimum.
    """
    unknown = [r for r in reasons if r not in CHECKS]
    if unknown:
        raise ConfigError(f"unknown cascade check(s) {unknown}; use: " + ", ".join(CHECKS))
    if "regex" in reasons:
        if not options.pattern:
            raise ConfigError("the regex cascade check needs a pattern")
        try:
            options.compiled()
        except re.error as exc:
            raise ConfigError(f"the regex cascade check's pattern is invalid: {exc}") from exc
    if "low_logprob" in reasons and options.min_logprob is None:
        raise ConfigError("the low_logprob cascade check needs a minimum mean log-probability")
    return options


def failed_check(
    body: Mapping[str, Any],
    response: Mapping[str, Any],
    reasons: Sequence[str] = DEFAULT_CHECKS,
    options: CheckOptions = NO_OPTIONS,
) -> str | None:
    """The first of ``reasons`` whose check the answer fails, or None when it is usable."""
    if _calls_tools(response):
        return None
    for reason in reasons:
        if CHECKS[reason](body, response, options):
            return reason
    return None
