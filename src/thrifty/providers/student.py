"""A distilled student as a deployment (``model: student/<model_dir>`` in ``model_list``).

The student answers a chat request with one of the teacher's answers it learned (the last user
message is what it reads, as in training), or defers when its confidence is under the bar
calibrated at training time. The gateway's student stage (``server/distilling.py``) asks it
first and sends deferred requests to the teacher; called on its own, a deferral is an error
(:class:`StudentDeferred`) saying that a teacher is needed.

The model dir is loaded on first use and its embeddings are memoised per input text (traffic
repeats: the same question costs a dictionary lookup the second time).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from thrifty.accounting.tokens import count_text
from thrifty.distill.modeldir import load_student
from thrifty.distill.student import Student
from thrifty.errors import ProviderError
from thrifty.integrations._streams import chunks_from_completion
from thrifty.providers.base import Provider
from thrifty.routing.features import prompt_text

#: Inputs whose answers are remembered per student (repeated questions skip the embedder).
MEMO_SIZE = 4096


class StudentDeferred(ProviderError):
    """The student's confidence is under its bar: the teacher must answer.

    Attributes:
        confidence: the student's confidence for this request.
    """

    retryable = False

    def __init__(self, model: str, confidence: float) -> None:
        super().__init__(
            f"student {model} defers (confidence {confidence:.3f} under its bar); "
            "put it in a route or give it a fallback so a teacher answers"
        )
        self.confidence = confidence


class StudentProvider(Provider):
    """Serves one student model dir with OpenAI-shaped answers.

    Args:
        model_dir: the directory ``thrifty distill train`` wrote.
        name: the deployment's model string (``student/<model_dir>``), for headers and logs.
    """

    gen_ai_system = "thrifty.student"

    def __init__(self, model_dir: str | Path, *, name: str | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.name = name or f"student/{model_dir}"
        self._student: Student | None = None
        self._lock = threading.Lock()
        self._memo: OrderedDict[str, tuple[str | None, float]] = OrderedDict()

    def load(self) -> Student:
        """The student, loaded once (raises ConfigError for a missing or damaged dir)."""
        with self._lock:
            if self._student is None:
                self._student = load_student(self.model_dir)
            return self._student

    def decide(self, text: str) -> tuple[str | None, float]:
        """``(answer or None, confidence)`` for one input text (blocking; memoised)."""
        with self._lock:
            known = self._memo.get(text)
            if known is not None:
                self._memo.move_to_end(text)
                return known
        decided = self.load().answer(text)
        with self._lock:
            self._memo[text] = decided
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return decided

    async def adecide(self, body: dict[str, Any]) -> tuple[str | None, float]:
        """:meth:`decide` for a chat body, off the event loop when it has to compute."""
        text = prompt_text(body)
        with self._lock:
            known = self._memo.get(text)
        if known is not None:
            return known
        return await asyncio.to_thread(self.decide, text)

    def response(self, body: dict[str, Any], answer: str) -> dict[str, Any]:
        """A ``chat.completion`` carrying ``answer``, with counted usage."""
        prompt = count_text(prompt_text(body))
        out = count_text(answer)
        return {
            "id": f"chatcmpl-student-{secrets.token_hex(6)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": out,
                "total_tokens": prompt + out,
            },
        }

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """The student's answer, or :class:`StudentDeferred` under its bar."""
        answer, confidence = await self.adecide(body)
        if answer is None:
            raise StudentDeferred(self.name, confidence)
        return self.response(body, answer)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The answer as the chunks a stream of it would carry."""
        completion = await self.chat(body)
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        for chunk in chunks_from_completion(completion, include_usage=include):
            yield chunk

    async def aclose(self) -> None:
        """Nothing to release: the arrays go with the object."""
