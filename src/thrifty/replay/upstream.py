"""The simulated upstream of a replay: a FAKE OpenAI (``thrifty.testing``) whose answers come
from the workload's data, so that what a cache hit serves, what compression leaves out and what
the answer then says are measured rather than assumed.

MMLU questions get a right answer from a tier whose model got it right in RouteLLM's data
(GPT-4 for the strong tier, Mixtral for the cheap one), so routing's quality cost is measured.
Support questions get the support set's reference answer. A RAG request is answered by reading
its prompt as a faithful reader would: the gold answer when the (possibly compressed) context
still contains it, else "not in the documents" — so an answer changed by compression is a real
loss of the fact the question needed.
"""

from __future__ import annotations

import re
from typing import Any

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


class DataReply:
    """``FakeOpenAI``'s ``reply``: the workload's answer for the request's question."""

    def __init__(self, items: list[Item]) -> None:
        self.support = {item.question: item for item in items if item.kind == "support"}
        self.rag = {item.question: item for item in items if item.kind == "rag"}
        self.mmlu = {item.question: item for item in items if item.kind == "mmlu"}

    def __call__(self, body: dict[str, Any], number: int) -> str:
        messages: list[dict[str, Any]] = body.get("messages") or []
        last = str(messages[-1].get("content") or "") if messages else ""
        match = _QUESTION.search(last)
        if match and match.group(1) in self.rag:
            return self.rag_answer(self.rag[match.group(1)], _text(messages))
        if last in self.mmlu:
            tier = "cheap" if str(body.get("model", "")) == CHEAP_MODEL else "strong"
            return RIGHT if tier in self.mmlu[last].right_by else WRONG
        item = self.support.get(last.strip())
        return item.answer if item is not None else FALLBACK

    @staticmethod
    def rag_answer(item: Item, prompt: str) -> str:
        found = next((gold for gold in item.gold if gold.lower() in prompt.lower()), None)
        return f"The answer is {found}." if found else NOT_FOUND


def correct(item: Item, answer: str, intents: dict[str, str]) -> bool:
    """Whether an answer is right for ``item``: a RAG answer names a gold answer; a support
    answer is a reference answer of the same intent (``intents``: answer -> intent)."""
    if item.kind == "mmlu":
        return answer == RIGHT
    if item.kind == "rag":
        return any(gold.lower() in answer.lower() for gold in item.gold)
    return intents.get(answer) == item.klass
