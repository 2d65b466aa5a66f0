"""The simulated upstream of a replay: a FAKE OpenAI (``thrifty.testing``) whose answers come
from the workload's data, so that what a cache hit serves, what compression leaves out and what
the answer then says are measured rather than assumed.

MMLU questions get a right answer from a tier whose model got it right in RouteLLM's data
(GPT-4 for the strong tier, Mixtral for the cheap one), so routing's quality cost is measured.
Support questions get the support set's reference answer. A RAG request is answered by reading
its prompt as a faithful reader would: the gold answer when the (possibly compressed) context
still contains it, else "not in the documents" — so an answer changed by compression is a real
loss of the fact the question needed. banking77 messages and arena-hard chat prompts get the
recorded answer of the tier's model (:mod:`thrifty.replay.streams`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from thrifty.accounting.tokens import count_text
from thrifty.replay.workload import Item

NOT_FOUND = "The documents do not say."
FALLBACK = "Thank you for reaching out; a support agent will follow up on your request."
RIGHT = "Answer: the right option."
WRONG = "Answer: a wrong option."
#: The upstream model name of the cheap tier (MMLU answers follow Mixtral's record there).
CHEAP_MODEL = "gpt-4o-mini"
_QUESTION = re.compile(r"Question: (.+?)\s*$", re.S)


def _text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages)


@dataclass(frozen=True, slots=True)
class UpstreamLatency:
    """The simulated upstream's latency: ``per_call_ms`` (time to first token) plus
    ``per_token_ms`` for each output token, the same for both tiers. Not slept: each upstream
    call's simulated time is added to the request's measured gateway latency by the replay."""

    per_call_ms: float = 500.0
    per_token_ms: float = 15.0

    def of(self, tokens_out: int) -> float:
        return self.per_call_ms + self.per_token_ms * tokens_out


class DataReply:
    """``FakeOpenAI``'s ``reply``: the workload's answer for the request's question (the
    cheap tier's recorded answer where the data has one). ``calls`` lists each upstream call
    as (model, output tokens), for the simulated latency."""

    def __init__(self, items: list[Item]) -> None:
        self.by_question = {
            item.question: item for item in items if item.kind in ("support", "intent", "chat")
        }
        self.rag = {item.question: item for item in items if item.kind == "rag"}
        self.mmlu = {item.question: item for item in items if item.kind == "mmlu"}
        self.calls: list[tuple[str, int]] = []

    def __call__(self, body: dict[str, Any], number: int) -> str:
        answer = self.answer(body)
        self.calls.append((str(body.get("model", "")), count_text(answer)))
        return answer

    def answer(self, body: dict[str, Any]) -> str:
        messages: list[dict[str, Any]] = body.get("messages") or []
        last = str(messages[-1].get("content") or "") if messages else ""
        cheap = str(body.get("model", "")) == CHEAP_MODEL
        match = _QUESTION.search(last)
        if match and match.group(1) in self.rag:
            return self.rag_answer(self.rag[match.group(1)], _text(messages))
        if last in self.mmlu:
            return RIGHT if ("cheap" if cheap else "strong") in self.mmlu[last].right_by else WRONG
        item = self.by_question.get(last.strip()) or self.by_question.get(last)
        if item is None:
            return FALLBACK
        return item.cheap_answer if cheap and item.cheap_answer else item.answer

    @staticmethod
    def rag_answer(item: Item, prompt: str) -> str:
        found = next((gold for gold in item.gold if gold.lower() in prompt.lower()), None)
        return f"The answer is {found}." if found else NOT_FOUND


def correct(item: Item, answer: str, intents: dict[str, str]) -> bool:
    """Whether an answer is right for ``item``: a RAG answer names a gold answer; a support
    answer is a reference answer of the same intent (``intents``: answer -> intent); an
    intent answer is the gold intent; a chat answer is the strong model's, or the cheap
    model's when it agrees with it (:mod:`thrifty.replay.streams`)."""
    if item.kind == "mmlu":
        return answer == RIGHT
    if item.kind == "intent":
        return answer == item.klass
    if item.kind == "chat":
        return answer == item.answer or (answer == item.cheap_answer and item.cheap_ok)
    if item.kind == "rag":
        return any(gold.lower() in answer.lower() for gold in item.gold)
    return intents.get(answer) == item.klass
