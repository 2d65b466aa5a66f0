"""``ThriftyCache``: LangChain's ``BaseCache`` over a :class:`thrifty.Cache`.

    from langchain_core.globals import set_llm_cache
    set_llm_cache(ThriftyCache(thrifty.Cache("redis://127.0.0.1:6379/0")))

Every LLM and chat model call then goes through thrifty's backends, TTLs, invalidation and
accounting (hits record the tokens and dollars they saved when the answer carried usage).

Generations are stored as compact JSON (text, generation info, and for chat models the
message's fields) and rebuilt with plain constructors: no pickle and no ``langchain_core.load``
on the hit path, which LangChain calls before every model call. The rebuilt generations are
reused while the stored entry is unchanged (LangChain's own InMemoryCache also hands back the
objects it stored), so treat them as read-only; the store is still read on every lookup.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import AIMessage, BaseMessage, messages_from_dict
from langchain_core.outputs import ChatGeneration, Generation

from thrifty import codec
from thrifty.accounting.tokens import count_text
from thrifty.cache import Cache
from thrifty.keys import text_key
from thrifty.policy import CachePolicy

log = logging.getLogger("thrifty.langchain")
#: Tag on every entry this adapter writes, so ``clear()`` removes only LangChain's entries.
TAG = "langchain"
# Chunk-only message fields that the whole message type does not take.
_CHUNK_FIELDS = ("tool_call_chunks", "chunk_position")


def _encode_message(message: BaseMessage) -> dict[str, Any]:
    data = message.model_dump(exclude_defaults=True)
    data.pop("type", None)
    kind = message.type
    if kind.endswith("Chunk"):  # streamed answers are cached as whole messages
        kind = {"AIMessageChunk": "ai"}.get(kind, kind[: -len("MessageChunk")].lower())
        for name in _CHUNK_FIELDS:
            data.pop(name, None)
    return {"type": kind, "data": data}


def _decode_message(record: dict[str, Any]) -> BaseMessage:
    if record["type"] == "ai":  # the one type a model returns: build it directly
        return AIMessage(**record["data"])
    return messages_from_dict([record])[0]


def encode_generations(generations: Sequence[Generation]) -> list[dict[str, Any]]:
    """Generations as compact JSON records."""
    records = []
    for gen in generations:
        record: dict[str, Any] = {}
        if isinstance(gen, ChatGeneration):
            record["message"] = _encode_message(gen.message)
        else:
            record["text"] = gen.text
        if gen.generation_info:
            record["info"] = gen.generation_info
        records.append(record)
    return records


def decode_generations(records: list[dict[str, Any]]) -> list[Generation]:
    """Rebuild what :func:`encode_generations` stored."""
    out: list[Generation] = []
    for record in records:
        if "message" in record:
            out.append(
                ChatGeneration(
                    message=_decode_message(record["message"]),
                    generation_info=record.get("info"),
                )
            )
        else:
            out.append(Generation(text=record["text"], generation_info=record.get("info")))
    return out


#: LangChain message types → OpenAI roles, for semantic scopes.
_ROLES = {"human": "user", "system": "system", "ai": "assistant", "tool": "tool",
          "function": "function"}  # fmt: skip


def semantic_request(prompt: str, llm_string: str) -> tuple[dict[str, Any], str]:
    """An OpenAI-shaped request for a LangChain call, so a semantic lookup compares only the
    last user message and matches everything else (model settings, system prompt, earlier
    turns) exactly. A chat model's prompt is its serialized messages; an LLM's is plain text.

    Returns:
        (request, kind) for :meth:`thrifty.Cache.lookup`.
    """
    try:
        records = json.loads(prompt) if prompt.startswith("[") else None
    except ValueError:
        records = None
    if (
        isinstance(records, list)
        and records
        and all(isinstance(r, dict) and isinstance(r.get("kwargs"), dict) for r in records)
    ):
        messages = []
        for record in records:
            fields = {k: v for k, v in record["kwargs"].items() if k != "type"}
            kind = record["kwargs"].get("type") or str(record.get("id", [""])[-1])
            role = fields.pop("role", None) if kind == "chat" else _ROLES.get(kind, kind)
            messages.append({"role": role, **fields})
        return {"model": llm_string, "messages": messages}, "chat"
    return {"model": llm_string, "prompt": prompt}, "completion"


def _describe(prompt: str, generations: Sequence[Generation]) -> dict[str, Any]:
    """Model and tokens of an answer, for the savings a later hit records."""
    tokens_in = tokens_out = 0
    model = None
    for gen in generations:
        message = getattr(gen, "message", None)
        usage = getattr(message, "usage_metadata", None) or {}
        if usage:
            tokens_in = max(tokens_in, int(usage.get("input_tokens", 0)))
            tokens_out += int(usage.get("output_tokens", 0))
        else:
            tokens_out += count_text(gen.text)
        meta = getattr(message, "response_metadata", None) or {}
        model = model or meta.get("model_name") or meta.get("model")
    if not tokens_in and not any(isinstance(g, ChatGeneration) for g in generations):
        tokens_in = count_text(prompt)  # an LLM's prompt is its text (a chat prompt is JSON)
    return {"model": model, "tokens_in": tokens_in, "tokens_out": tokens_out}


#: ``temperature`` in an llm_string: a JSON field (``"temperature": 0.7``) of the serialized
#: model, or a parameter tuple (``('temperature', 0.7)``) after it.
_TEMPERATURE = re.compile(r"""["']temperature["']\s*[:,]\s*([-+0-9.eE]+|None|null)""")
#: How many llm_strings' temperature verdicts a cache remembers.
SAMPLED_MEMO_SIZE = 256


def temperature_of(llm_string: str) -> float | None:
    """The temperature a LangChain model samples at, None when its llm_string sets none."""
    found = _TEMPERATURE.findall(llm_string)
    try:
        return float(found[-1]) if found and found[-1] not in ("None", "null") else None
    except ValueError:
        return None


class ThriftyCache(BaseCache):
    """LangChain's LLM cache backed by :class:`thrifty.Cache`.

    The policy is thrifty's one :class:`~thrifty.policy.CachePolicy`, as for the gateway and
    ``thrifty.wrap``: a model that leaves temperature unset or at 0 is cached, one sampling at
    ``temperature > 0`` is not (neither read nor written) unless ``cache_temperature=True``.

    Args:
        cache: the thrifty cache (any backend).
        namespace: namespace (tenant) of these entries; the cache's default otherwise.
        ttl: lifetime of entries in seconds; the cache's default otherwise.
        cache_temperature: also cache models sampling at ``temperature > 0``.
    """

    def __init__(
        self,
        cache: Cache,
        *,
        namespace: str | None = None,
        ttl: float | None = None,
        cache_temperature: bool = False,
    ) -> None:
        self.cache = cache
        self.policy = CachePolicy(
            namespace=namespace or cache.namespace, ttl=ttl, cache_temperature=cache_temperature
        )
        self.namespace: str = self.policy.namespace or cache.namespace
        self.ttl = ttl
        self._bypassed: dict[str, bool] = {}  # llm_string -> the temperature rule says no

    def _bypass(self, llm_string: str) -> bool:
        """True when the policy keeps this model's calls out of the cache (memoized: LangChain
        asks before every model call, and parsing the llm_string is not free)."""
        verdict = self._bypassed.get(llm_string)
        if verdict is None:
            verdict = self.policy.for_temperature(temperature_of(llm_string)).bypass
            if len(self._bypassed) >= SAMPLED_MEMO_SIZE:
                self._bypassed.clear()
            self._bypassed[llm_string] = verdict
        return verdict

    def _key(self, prompt: str, llm_string: str) -> str:
        return text_key(prompt, llm_string, namespace=self.namespace)

    def _semantic(self, prompt: str, llm_string: str) -> dict[str, Any]:
        """Lookup/store arguments for a semantic cache; nothing (no parsing) for an exact one."""
        if self.cache.semantic is None:
            return {}
        request, kind = semantic_request(prompt, llm_string)
        return {"request": request, "kind": kind}

    def _entry(self, prompt: str, return_val: RETURN_VAL_TYPE) -> dict[str, Any] | None:
        try:
            records = encode_generations(return_val)
            codec.encode(records)  # generation_info may hold values JSON cannot carry
        except (TypeError, ValueError) as exc:
            log.warning("thrifty cannot store this LangChain answer: %s", exc)
            return None
        built = (decode_generations, list(return_val))  # later hits return these objects
        return {"value": records, "built": built, **_describe(prompt, return_val)}

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        # The memo answers first (False: cached): no method call for a known model.
        if self._bypassed.get(llm_string, True) and self._bypass(llm_string):
            return None
        namespace, cache = self.namespace, self.cache  # (locals: this runs before every call)
        key = text_key(prompt, llm_string, namespace=namespace)
        if cache.semantic is None:
            hit = cache.lookup(key, namespace=namespace, build=decode_generations)
        else:
            semantic = self._semantic(prompt, llm_string)
            hit = cache.lookup(key, namespace=namespace, build=decode_generations, **semantic)
        return None if hit is None else hit.value

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        entry = None if self._bypass(llm_string) else self._entry(prompt, return_val)
        if entry is not None:
            self.cache.set(
                self._key(prompt, llm_string),
                namespace=self.namespace,
                ttl=self.ttl,
                tags=(TAG,),
                **self._semantic(prompt, llm_string),
                **entry,
            )

    def clear(self, **kwargs: Any) -> None:
        """Remove this adapter's entries (in its namespace); other entries stay."""
        self.cache.invalidate(namespace=self.namespace, tag=TAG)

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        if self._bypass(llm_string):
            return None
        key = self._key(prompt, llm_string)
        semantic = self._semantic(prompt, llm_string)
        hit = await self.cache.alookup(
            key, namespace=self.namespace, build=decode_generations, **semantic
        )
        return None if hit is None else hit.value

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        entry = None if self._bypass(llm_string) else self._entry(prompt, return_val)
        if entry is not None:
            await self.cache.aset(
                self._key(prompt, llm_string),
                namespace=self.namespace,
                ttl=self.ttl,
                tags=(TAG,),
                **self._semantic(prompt, llm_string),
                **entry,
            )

    async def aclear(self, **kwargs: Any) -> None:
        await self.cache.ainvalidate(namespace=self.namespace, tag=TAG)
