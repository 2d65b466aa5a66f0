"""Routing rules, declared as data: "requests like this go to that model".

A :class:`Rule` pairs a :class:`Condition` (every field that is set must hold) with the model
of the route's chain that answers. Rules are tried in order; the first that matches decides. The
dataclasses are plain, so the gateway's pydantic config validates them as they are (unknown
fields are refused, errors name the field)::

    rules:
      - {when: {min_prompt_tokens: 2000}, to: gpt-4o}
      - {when: {keywords: [prove, "step by step"]}, to: gpt-4o}
      - {when: {code: true}, to: gpt-4o}
      - {when: {tools: true}, to: gpt-4o}
      - {when: {response_format: json_schema}, to: gpt-4o}
      - {when: {max_prompt_tokens: 30}, to: gpt-4o-mini}
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from thrifty.routing.features import RequestFeatures

RESPONSE_FORMATS = ("text", "json_object", "json_schema")


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@functools.lru_cache(maxsize=256)
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    """Whole words or phrases, case-insensitive (``prove`` does not match ``improve``)."""
    alternatives = "|".join(re.escape(k.strip()) for k in keywords if k.strip())
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Condition:
    """What a request must look like for a rule to apply (unset fields are not checked).

    Attributes:
        min_prompt_tokens: the prompt has at least this many tokens.
        max_prompt_tokens: the prompt has at most this many tokens.
        keywords: any of these words or phrases occurs (case-insensitive, whole words).
        code: the prompt contains (True) or does not contain (False) code.
        tools: the request offers (True) or does not offer (False) tools.
        response_format: the request's ``response_format.type`` is one of these.
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    min_prompt_tokens: int | None = None
    max_prompt_tokens: int | None = None
    keywords: tuple[str, ...] | str = ()
    code: bool | None = None
    tools: bool | None = None
    response_format: tuple[str, ...] | str = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "keywords", _as_tuple(self.keywords))
        object.__setattr__(self, "response_format", _as_tuple(self.response_format))
        for kind in self.response_format:
            if kind not in RESPONSE_FORMATS:
                raise ValueError(
                    f"response_format {kind!r} is not one of " + ", ".join(RESPONSE_FORMATS)
                )
        for name in ("min_prompt_tokens", "max_prompt_tokens"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be ≥ 0")

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) in (None, ()) for f in fields(self))

    def matches(self, features: RequestFeatures) -> bool:
        return all(
            check(self, features)
            for name, check in CHECKS.items()
            if getattr(self, name) not in (None, ())
        )

    def describe(self) -> str:
        """A short account of the condition, for ``X-Thrifty-Route``."""
        return (
            " ".join(
                DESCRIBE[name](getattr(self, name))
                for name in CHECKS
                if getattr(self, name) not in (None, ())
            )
            or "always"
        )


#: One check per :class:`Condition` field (strategies as data).
CHECKS: dict[str, Callable[[Condition, RequestFeatures], bool]] = {
    "min_prompt_tokens": lambda c, f: f.prompt_tokens >= (c.min_prompt_tokens or 0),
    "max_prompt_tokens": lambda c, f: f.prompt_tokens <= (c.max_prompt_tokens or 0),
    "keywords": lambda c, f: _keyword_pattern(c.keywords).search(f.all_text) is not None,
    "code": lambda c, f: f.code == c.code,
    "tools": lambda c, f: f.tools == c.tools,
    "response_format": lambda c, f: f.response_format in c.response_format,
}

DESCRIBE: dict[str, Callable[[Any], str]] = {
    "min_prompt_tokens": lambda v: f"tokens>={v}",
    "max_prompt_tokens": lambda v: f"tokens<={v}",
    "keywords": lambda v: "keyword",
    "code": lambda v: "code" if v else "no-code",
    "tools": lambda v: "tools" if v else "no-tools",
    "response_format": lambda v: "/".join(v),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """``when`` the request matches, ``to`` (a model of the route's chain) answers it."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    to: str
    when: Condition = field(default_factory=Condition)


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """The first rule that matched: its position, its target and why."""

    index: int
    to: str
    reason: str


def first_match(rules: Sequence[Rule], features: RequestFeatures) -> RuleMatch | None:
    """The first rule whose condition holds, or None."""
    for index, rule in enumerate(rules):
        if rule.when.matches(features):
            return RuleMatch(index, rule.to, f"rule {rule.when.describe()}")
    return None
