"""Is a cheap answer usable? The checks that make a route cascade to its next model.

Each check reads the request and the answer and says yes or no; the first failing one names the
reason (``empty``, ``refusal``, ``invalid_json``, ``schema_mismatch``), which the gateway counts
in ``thrifty_cascade_total{reason}``. An answer that calls tools is judged by none of them.
JSON schemas are checked with ``jsonschema`` (the ``server`` extra), imported on first use.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger("thrifty.routing")

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


Check = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]

#: Checks by reason, in the order they are tried (strategies as data).
CHECKS: dict[str, Check] = {
    "empty": _is_empty,
    "refusal": _is_refusal,
    "invalid_json": _is_invalid_json,
    "schema_mismatch": _breaks_schema,
}


def failed_check(
    body: Mapping[str, Any], response: Mapping[str, Any], reasons: Sequence[str] = tuple(CHECKS)
) -> str | None:
    """The first of ``reasons`` whose check the answer fails, or None when it is usable."""
    if _calls_tools(response):
        return None
    for reason in reasons:
        if CHECKS[reason](body, response):
            return reason
    return None
