"""OpenAI ``stop`` semantics over generated text, for runtimes that miss some stop strings.

mistral.rs 0.9 stops on some stop strings and not on others (with SmolLM2, ``["need"]`` stopped,
``["reset"]`` and ``["your"]`` did not), so its provider checks the text itself: the answer ends
before the first stop string, and a stream holds back the few characters that could be the start
of one until the next token shows whether they are.
"""

from __future__ import annotations

from collections.abc import Sequence


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to its first stop string, and whether one was found."""
    found = [index for stop in stops if stop and (index := text.find(stop)) >= 0]
    if not found:
        return text, False
    return text[: min(found)], True


class StopScanner:
    """Feed a stream's text pieces; get back what may be sent now, and whether it stopped.

    Args:
        stops: the request's stop strings (empty: every piece passes through at once).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.stopped = False
        self._pending = ""

    def feed(self, piece: str) -> str:
        """The text that can be sent after ``piece``: up to a stop string once one appears
        (then :attr:`stopped` is true and later pieces give nothing), else all but the tail
        that could still grow into a stop string."""
        if self.stopped:
            return ""
        if not self.stops:
            return piece
        text, self.stopped = cut_at_stop(self._pending + piece, self.stops)
        if self.stopped:
            self._pending = ""
            return text
        keep = self._undecided_tail(text)
        self._pending = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        """What is still held back once the stream has ended (it was no stop string)."""
        pending, self._pending = self._pending, ""
        return pending

    def _undecided_tail(self, text: str) -> int:
        """The length of the longest end of ``text`` that is a proper prefix of a stop string."""
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if stop.startswith(text[-size:]):
                    longest = size
                    break
        return longest
