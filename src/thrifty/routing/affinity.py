"""Prefix affinity: requests that share a long prompt prefix go to the same deployment.

Providers cache prompt prefixes per server: OpenAI bills cached input tokens at half price (a
quarter or a tenth on newer models) once a prefix of 1,024 tokens or more repeats, Anthropic at a
tenth, and both keep it warm only minutes. A pool that spreads one tenant's requests (same system
prompt, same documents) over four deployments pays the cold price up to four times as often and
lets each copy go cold sooner. :func:`prefix_key` names the shared prefix; :func:`rendezvous`
maps a key to one deployment, stably (highest random weight, scaled by the deployments'
weights): the same key keeps its deployment while that deployment is healthy, and only the keys
of a deployment that leaves move. The same key can be sent as OpenAI's ``prompt_cache_key``,
which steers the provider's own routing to its cache the same way.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from thrifty.accounting.tokens import content_text


class Weighted(Protocol):
    """What :func:`rendezvous` reads of a deployment (``deployments.Deployment`` has both)."""

    @property
    def id(self) -> str: ...

    @property
    def share(self) -> float: ...


D = TypeVar("D", bound=Weighted)

#: Characters of the prompt that make the key (~1,000 tokens: the first block providers cache).
PREFIX_CHARS = 4096
#: Prompts shorter than this (characters) get no key: providers do not cache them anyway.
MIN_CHARS = 4096


def _prompt_head(body: Mapping[str, Any], limit: int) -> str:
    messages = body.get("messages")
    if isinstance(messages, list):
        parts: list[str] = []
        size = 0
        for message in messages:
            if not isinstance(message, Mapping):
                continue
            part = f"{message.get('role')}\x1f{content_text(message.get('content'))}\x1e"
            parts.append(part)
            size += len(part)
            if size >= limit:
                break
        return "".join(parts)[:limit]
    prompt = body.get("prompt")
    return prompt[:limit] if isinstance(prompt, str) else ""


def prefix_key(
    body: Mapping[str, Any],
    *,
    tenant: str | None = None,
    prefix_chars: int = PREFIX_CHARS,
    min_chars: int = MIN_CHARS,
) -> str | None:
    """A short stable name for the first ``prefix_chars`` of the prompt (and its tenant), or
    None for a prompt too short to be cached by a provider."""
    head = _prompt_head(body, max(prefix_chars, min_chars))
    if len(head) < min_chars:
        return None
    digest = hashlib.sha256(f"{tenant or ''}\x1d{head[:prefix_chars]}".encode()).hexdigest()
    return digest[:24]


def _weight(key: str, deployment_id: str) -> float:
    raw = hashlib.blake2b(f"{key}\x1d{deployment_id}".encode(), digest_size=8).digest()
    return (int.from_bytes(raw, "big") + 1) / 2**64  # in (0, 1]


def rendezvous(candidates: Sequence[D], key: str) -> D:
    """The deployment ``key`` belongs to: weighted rendezvous hashing (score ``-share / ln u``),
    so a deployment with twice the weight gets twice the keys."""
    return max(candidates, key=lambda d: -d.share / math.log(_weight(key, d.id)))


class PrefixAffinity:
    """The gateway's use of prefix affinity (``router_settings.prompt_cache_affinity``).

    Args:
        send_key: also set OpenAI's ``prompt_cache_key`` to the key on requests that carry none
            (``router_settings.prompt_cache_key``; for OpenAI-compatible upstreams).
    """

    def __init__(self, *, send_key: bool = False) -> None:
        self.send_key = send_key

    def key_for(self, body: dict[str, Any], tenant: str | None) -> str | None:
        """The request's prefix key (None: too short to be cached); sets ``prompt_cache_key``
        in ``body`` when asked to and the client did not."""
        key = prefix_key(body, tenant=tenant)
        if key is not None and self.send_key and "prompt_cache_key" not in body:
            body["prompt_cache_key"] = key
        return key
