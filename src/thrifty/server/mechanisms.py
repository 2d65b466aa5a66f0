"""The configuration blocks of the gateway's two answer-shaping mechanisms: compression of RAG
context (``compression:``) and the distilled student (``distill:``).

Kept apart from ``server/config.py`` so that the stages using them import only these small
models, and the config file stays one place that lists the blocks::

    compression:
      enabled: true
      ratio: 0.4          # keep at most 40 % of the context's tokens
      min_tokens: 300     # smaller contexts are sent as they are
      floor: 100          # never keep fewer tokens than this
      user_turns_over: 2000  # also compress whole user turns longer than this (None: never)
      models: {gpt-4o: {ratio: 0.6}, thrifty/auto: {enabled: false}}
    distill:
      record: teacher_pairs.jsonl  # (question, teacher answer) pairs of answered requests
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CompressionOptions(_Strict):
    """How the context of one model's (or route's) requests is compressed."""

    enabled: bool = False
    ratio: float = Field(default=0.5, gt=0.0, le=1.0)
    """Keep at most this share of the context's tokens (0.4 cuts 60 %)."""
    min_tokens: NonNegativeInt = 300
    """Contexts with fewer tokens are not worth cutting: they are sent unchanged."""
    floor: NonNegativeInt = 100
    """Never keep fewer tokens than this (the key fact must survive)."""
    user_turns_over: PositiveInt | None = None
    """Compress whole user turns longer than this many tokens (their last paragraph, the
    question, is kept); None: only context marked in the request is compressed."""
    tag: str = Field(default="context", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    """``<context>…</context>`` (or ``<context id="doc:42">``) blocks inside a message are
    compressed as one document each."""
    key: Literal["original", "compressed"] = "original"
    """What a compressed request's answer is cached under: the ``original`` request with its
    compression settings (only the same request under the same settings hits), or the
    ``compressed`` prompt (requests whose contexts compress alike share an answer); per request
    ``X-Thrifty-Compression-Key``."""


class CompressionSettings(CompressionOptions):
    """The ``compression:`` block: defaults for every model, overrides per model or route."""

    embedder: str = "static"
    """The sentence embedder: ``static`` (the default), a table distilled once from the local
    MiniLM (build it ahead with ``thrifty embedder build-static``, else the first request waits
    for the one-off build); ``minilm`` itself (~50x more CPU on an unseen context for 0.4-2.6
    points more answer survival on the benchmarks); or ``hashing``, lexical, without a model."""
    llmlingua2_model: str | None = None
    """A local LLMLingua-2 model folder: compress with it instead (needs ``llmlingua``; the
    gateway refuses to start when the folder or the package is missing)."""
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per model or route name: the fields that differ from the defaults above."""

    @model_validator(mode="after")
    def _valid_overrides(self) -> CompressionSettings:
        for name in self.models:  # a bad override fails when the config loads, not per request
            self.for_model(name)
        return self

    def for_model(self, model: str | None) -> CompressionOptions:
        """The options of ``model``'s requests: the defaults, overridden by its entry."""
        base = {name: getattr(self, name) for name in CompressionOptions.model_fields}
        override: Mapping[str, Any] = self.models.get(model or "", {})
        return CompressionOptions.model_validate({**base, **override})

    def any_enabled(self) -> bool:
        """Whether some model compresses by configuration (a request may still ask for it)."""
        return self.enabled or any(bool(m.get("enabled")) for m in self.models.values())


class DistillSettings(_Strict):
    """The ``distill:`` block: where the gateway records teacher pairs for training."""

    record: str | None = None
    """JSONL file that answered chat requests append ``{"input", "output"}`` pairs to
    (relative paths: from the working directory); None records nothing."""
    models: list[str] | None = None
    """The model or route names whose answers are recorded; None: every model."""
