"""Request bodies the gateway accepts, validated before anything is spent on them.

The models check only what the gateway relies on (the model name, messages, types of the common
sampling fields) and allow every other field, so new OpenAI parameters pass through unchanged:
the upstream receives the client's original body, not a re-serialised model.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    StrictBool,
    ValidationError,
    model_validator,
)

from thrifty.batching.jobfile import ENDPOINTS
from thrifty.policy import MAX_TTL, CacheMode
from thrifty.server.errors import APIError

M = TypeVar("M", bound=BaseModel)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContextDocument(BaseModel):
    """A RAG document of ``thrifty.context``: its text, or the index of the message holding it;
    its ``id`` names it (``doc:42``) for the cached answer's tags; its ``title`` (optional, not
    sent upstream) helps compression tell which document the question is about."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=200)
    text: str | None = None
    message: int | None = Field(default=None, ge=0)
    title: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _text_or_message(self) -> ContextDocument:
        if (self.text is None) == (self.message is None):
            raise ValueError("give exactly one of text and message")
        return self


#: The ``thrifty`` fields that describe the RAG context, not the cache policy.
CONTEXT_OPTIONS = ("context", "question", "tags")


class ThriftyOptions(BaseModel):
    """The optional ``thrifty`` body field: the same controls as the ``X-Thrifty-*`` headers,
    and the RAG context the gateway may compress (``context``: message indexes, texts or
    :class:`ContextDocument`; ``question``: what it was retrieved for)."""

    model_config = ConfigDict(extra="forbid")

    cache: CacheMode | None = None
    ttl: float | None = Field(default=None, gt=0, le=MAX_TTL, allow_inf_nan=False)
    """Seconds the answer lives, at most ten years (``X-Thrifty-TTL``)."""
    namespace: str | None = Field(default=None, min_length=1, max_length=200)
    cache_temperature: bool | None = None
    context: list[int | str | ContextDocument] | None = None
    question: str | None = None
    tags: list[str] | None = Field(default=None, max_length=64)
    """Tags of the cached answer (the documents it was built on), as ``X-Thrifty-Tags``."""


class ChatMessage(_Open):
    role: str = Field(min_length=1)
    content: str | list[dict[str, Any]] | None = None


class _Sampling(_Open):
    model: str = Field(min_length=1)
    stream: StrictBool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: PositiveInt | None = None
    max_tokens: PositiveInt | None = None
    user: str | None = None
    thrifty: ThriftyOptions | None = None


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: PositiveInt | None = None
    stream_options: dict[str, Any] | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]


class EmbeddingRequest(_Open):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: PositiveInt | None = None
    user: str | None = None
    thrifty: ThriftyOptions | None = None


class InvalidateRequest(BaseModel):
    """``POST /admin/invalidate``: entries matching all given fields are removed."""

    model_config = ConfigDict(extra="forbid")

    namespace: str | None = None
    tag: str | None = None
    model: str | None = None
    model_version: str | None = None
    user: str | None = None
    key: str | None = Field(default=None, min_length=1)
    """One entry by its cache key (``X-Thrifty-Cache-Key`` of the response that stored it)."""


class PurgeUserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1)


class FeedbackRequest(BaseModel):
    """``POST /v1/thrifty/feedback``: whether a semantic hit's answer, or a route model's
    answer, was right.

    ``hit_id`` is the ``X-Thrifty-Hit-Id`` of the response, ``route_id`` its
    ``X-Thrifty-Route-Id`` (exactly one of them): random ids, so a caller can only report on
    answers it was served.
    """

    model_config = ConfigDict(extra="forbid")

    hit_id: str | None = Field(default=None, min_length=1, max_length=64)
    route_id: str | None = Field(default=None, min_length=1, max_length=64)
    correct: bool

    @model_validator(mode="after")
    def _one_id(self) -> FeedbackRequest:
        if (self.hit_id is None) == (self.route_id is None):
            raise ValueError("give exactly one of hit_id and route_id")
        return self


class CreateBatchRequest(_Open):
    """``POST /v1/batches``: run the requests of an uploaded file (OpenAI's Batch API)."""

    input_file_id: str = Field(min_length=1, max_length=200)
    """The id ``POST /v1/files`` answered."""
    endpoint: str = Field(json_schema_extra={"enum": list(ENDPOINTS)})
    """Which endpoint every line of the file calls."""
    completion_window: Literal["24h"] = "24h"
    metadata: dict[str, str] | None = None


class ErrorDetail(BaseModel):
    """What went wrong, in OpenAI's shape."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorDetail


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or "-" in str(part):
            continue  # union member names pydantic adds, e.g. list[str]
        else:
            out += f".{part}" if out else str(part)
    return out


def validate_body(model: type[M], body: Any) -> M:
    """``model`` validated from a decoded JSON body.

    Raises:
        APIError: 400 naming the first bad field (``param``), never a 500.
    """
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_body")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = _param(first["loc"])
        missing = first["type"] == "missing"
        message = (
            f"missing required parameter: {param}"
            if missing
            else (f"invalid value for {param}: {first['msg']}" if param else first["msg"])
        )
        code = "missing_required_parameter" if missing else "invalid_value"
        raise APIError(400, message, param=param or None, code=code) from None


__all__ = [
    "CONTEXT_OPTIONS",
    "CacheMode",
    "ChatRequest",
    "CompletionRequest",
    "ContextDocument",
    "CreateBatchRequest",
    "EmbeddingRequest",
    "ErrorBody",
    "InvalidateRequest",
    "PurgeUserRequest",
    "ThriftyOptions",
    "validate_body",
]
