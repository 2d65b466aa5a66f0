"""Where the RAG context sits in a chat request, and the request rewritten with it compressed.

A chat request carries its retrieved documents in one of three ways, all found here so the
gateway stage only decides *whether* to compress:

- marked in the request: ``thrifty.context`` lists message indexes (that message's text is a
  document) or documents themselves (``"text"`` or ``{"id", "text"}``), which are placed, once
  compressed, in a ``<context>`` block at the head of the last user turn;
- tagged inside a message: each ``<context>…</context>`` (or ``<context id="doc:42">…``) block;
- a whole user turn longer than a threshold, when the configuration says so (its last paragraph
  is taken as the question and kept).

Pure functions over the JSON body, no I/O: :func:`find_context` says what to compress and with
which question, :func:`rewrite` puts the compressed texts back where they came from.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from thrifty.accounting.tokens import count_text
from thrifty.errors import ConfigError


class ContextError(ConfigError):
    """``thrifty.context`` names a message the request does not have, or one without text."""


@dataclass(frozen=True, slots=True)
class Marked:
    """One entry of ``thrifty.context``: a message index, or a document's text; with its id
    and title."""

    message: int | None = None
    text: str | None = None
    id: str | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Piece:
    """One document to compress and where its text sits: message ``message``, content part
    ``part`` (None: the content is a string), characters ``start:end``; ``message`` is None for
    a document given in ``thrifty.context`` itself."""

    text: str
    id: str | None
    message: int | None = None
    part: int | None = None
    start: int = 0
    end: int = 0
    title: str | None = None


@dataclass(slots=True)
class ContextPlan:
    """What to compress in one request, and the question to compress it for."""

    question: str
    pieces: list[Piece] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        """The named documents' ids (for the cached answer's tags)."""
        return list(dict.fromkeys(p.id for p in self.pieces if p.id))

    def tokens(self) -> int:
        return sum(count_text(p.text) for p in self.pieces)


def _tag_pattern(tag: str) -> re.Pattern[str]:
    return re.compile(rf'<{tag}(?:\s+id="([^"]*)")?\s*>(.*?)</{tag}\s*>', re.DOTALL)


def _texts(content: Any) -> list[tuple[int | None, str]]:
    """The text parts of a message content as ``(part index or None, text)``."""
    if isinstance(content, str):
        return [(None, content)]
    if isinstance(content, list):
        return [
            (i, p["text"])
            for i, p in enumerate(content)
            if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        ]
    return []


def _last_user(messages: Sequence[Mapping[str, Any]]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return i
    return None


def find_context(
    messages: Sequence[Mapping[str, Any]],
    marked: Sequence[Marked] = (),
    *,
    question: str | None = None,
    tag: str = "context",
    user_turns_over: int | None = None,
) -> ContextPlan:
    """The documents of a chat request's context and the question they serve.

    Raises:
        ContextError: a marked index outside the messages, or naming one without text.
    """
    pieces: list[Piece] = []
    whole: set[int] = set()
    for n, mark in enumerate(marked):
        if mark.message is None:
            pieces.append(Piece(mark.text or "", mark.id, title=mark.title))
            continue
        if not 0 <= mark.message < len(messages):
            raise ContextError(
                f"thrifty.context[{n}]: message {mark.message} is not in the request "
                f"({len(messages)} messages)"
            )
        parts = _texts(messages[mark.message].get("content"))
        if not parts:
            raise ContextError(f"thrifty.context[{n}]: message {mark.message} has no text")
        whole.add(mark.message)
        pieces.extend(
            Piece(t, mark.id, mark.message, p, 0, len(t), title=mark.title) for p, t in parts
        )
    pattern = _tag_pattern(tag)
    tagged: set[int] = set()
    for i, message in enumerate(messages):
        if i in whole:
            continue
        for part, text in _texts(message.get("content")):
            for m in pattern.finditer(text):
                tagged.add(i)
                pieces.append(Piece(m.group(2), m.group(1) or None, i, part, *m.span(2)))
    last = _last_user(messages)
    asked = _question_of(messages, last, pattern) if question is None else question
    if user_turns_over is not None:
        for i, message in enumerate(messages):
            content = message.get("content")
            if i in whole or i in tagged or message.get("role") != "user":
                continue
            if not isinstance(content, str) or count_text(content) <= user_turns_over:
                continue
            end = len(content)
            if i == last:  # its last paragraph is the question: kept as it is
                cut = content.rstrip().rfind("\n\n")
                end = cut if cut > 0 else end
                if question is None and cut > 0:
                    asked = content[cut:].strip()
            pieces.append(Piece(content[:end], None, i, None, 0, end))
    pieces.sort(key=lambda p: (-1 if p.message is None else p.message, p.part or 0, p.start))
    return ContextPlan(asked, pieces)


def _question_of(
    messages: Sequence[Mapping[str, Any]], last: int | None, pattern: re.Pattern[str]
) -> str:
    """The last user turn without its tagged context (its last paragraph when all of it is
    context)."""
    if last is None:
        return ""
    text = "\n".join(t for _, t in _texts(messages[last].get("content")))
    return pattern.sub(" ", text).strip()


def rewrite(
    body: Mapping[str, Any], plan: ContextPlan, texts: Sequence[str], *, tag: str = "context"
) -> dict[str, Any]:
    """A copy of ``body`` with each piece of ``plan`` replaced by its text in ``texts`` (in
    the plan's order); documents given in ``thrifty.context`` go, joined, in a ``<tag>`` block
    at the head of the last user turn."""
    out = dict(body)
    messages = copy.deepcopy(list(body["messages"]))
    out["messages"] = messages
    given = [t for p, t in zip(plan.pieces, texts, strict=True) if p.message is None and t]
    # replace from the end of each text backwards so earlier offsets stay valid
    placed = sorted(
        ((p, t) for p, t in zip(plan.pieces, texts, strict=True) if p.message is not None),
        key=lambda pt: (pt[0].message, pt[0].part or 0, pt[0].start),
        reverse=True,
    )
    for piece, text in placed:
        message = messages[piece.message]  # type: ignore[index]
        if piece.part is None:
            content = message["content"]
            message["content"] = content[: piece.start] + text + content[piece.end :]
        else:
            part = message["content"][piece.part]
            part["text"] = part["text"][: piece.start] + text + part["text"][piece.end :]
    if given:
        block = f"<{tag}>\n" + "\n\n".join(given) + f"\n</{tag}>\n\n"
        last = _last_user(messages)
        if last is None:
            messages.append({"role": "user", "content": block.rstrip()})
        elif isinstance(messages[last].get("content"), list):
            messages[last]["content"].insert(0, {"type": "text", "text": block})
        else:
            messages[last]["content"] = block + str(messages[last].get("content") or "")
    return out
