"""The configuration of the gateway's route models (``routes:``): a chain of ``model_list``
names, cheapest first, the rules and learned router that pick one, and the cascade's checks.

Kept apart from ``server/config.py`` (like ``mechanisms.py``) so that the routing stages import
only these models::

    routes:
      - name: thrifty/auto
        chain: [gpt-4o-mini, gpt-4o]
        rules: [{when: {code: true}, to: gpt-4o}]
        router: {path: router.json, target_strong_share: 0.4}
        cascade_on: [empty, refusal, invalid_json]
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thrifty.routing.rules import Rule

#: Checks of an answer that send it to the next model of a cascade (``routing/validation.py``).
CascadeCheck = Literal[
    "empty",
    "refusal",
    "invalid_json",
    "schema_mismatch",
    "no_number",
    "unmarked",
    "arithmetic",
    "hedging",
    "regex",
    "low_logprob",
]
#: The checks a route runs unless ``cascade_on`` says otherwise: the answer's format.
DEFAULT_CASCADE: tuple[CascadeCheck, ...] = ("empty", "refusal", "invalid_json", "schema_mismatch")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouterFileSettings(_Strict):
    """A route's learned router: its file and where to put its threshold (at most one target;
    none: the threshold the file was calibrated with)."""

    path: str = Field(min_length=1)
    """The file ``thrifty route train`` wrote (relative paths: from the config file's folder)."""
    target_strong_share: float | None = Field(default=None, ge=0.0, le=1.0)
    target_quality: float | None = Field(default=None, gt=0.0, le=1.0)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_target(self) -> RouterFileSettings:
        given = [self.target_strong_share, self.target_quality, self.threshold]
        if sum(v is not None for v in given) > 1:
            raise ValueError("give one of target_strong_share, target_quality, threshold")
        return self


class RouteSettings(_Strict):
    """A route model (``thrifty/auto``): a chain of ``model_list`` names, cheapest first."""

    name: str = Field(min_length=1)
    chain: list[str] = Field(min_length=2)
    rules: list[Rule] = Field(default_factory=list)
    """Tried in order; the first whose ``when`` holds sends the request ``to`` a chain model."""
    router: RouterFileSettings | None = None
    default: str | None = None
    """Where requests go that no rule and no router decides (default: the cheapest)."""
    cascade_on: list[CascadeCheck] = Field(default_factory=lambda: list(DEFAULT_CASCADE))
    """Answers failing these checks go to the next model of the chain."""
    cascade_regex: str | None = None
    """``regex`` check: an answer must match this pattern to be kept."""
    cascade_min_logprob: float | None = Field(default=None, le=0.0)
    """``low_logprob`` check: the least mean token log-probability kept (when returned)."""
    feedback_path: str | None = None
    """JSONL file where ``POST /v1/thrifty/feedback`` appends outcomes for ``thrifty route
    train`` (relative paths: from the config file's folder)."""

    @model_validator(mode="after")
    def _within_chain(self) -> RouteSettings:
        if len(set(self.chain)) != len(self.chain):
            raise ValueError(f"chain {self.chain} names a model twice")
        for i, rule in enumerate(self.rules):
            if rule.to not in self.chain:
                raise ValueError(f"rules[{i}].to {rule.to!r} is not in the chain {self.chain}")
        if self.default is not None and self.default not in self.chain:
            raise ValueError(f"default {self.default!r} is not in the chain {self.chain}")
        return self
