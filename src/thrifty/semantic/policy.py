"""The fixed-threshold policy: one similarity bar for every entry.

The verified per-entry policy (``thresholds.py``) learns a bar per entry from feedback so the
share of wrong hits stays under a bound; this one is the baseline and the default.
"""

from __future__ import annotations

import threading

from thrifty.errors import ConfigError
from thrifty.semantic.base import ThresholdPolicy

#: Default cosine bar for all-MiniLM-L6-v2, chosen on the QQP ``dev`` split: the lowest bar (most
#: hits) whose wrong-hit rate is ≤ 10 % with 95 % confidence (Wilson upper bound) with the guards
#: on (``benchmarks/fit_semantic_thresholds.py``; 0.975 without guards; 0.97 before the order
#: and code guards). The seeds' 0.9 served 20 % wrong hits there. No fixed bar reaches 5 %: use
#: ``VerifiedThreshold`` for a bound like 1 %.
DEFAULT_THRESHOLD = 0.96


class FixedThreshold(ThresholdPolicy):
    """Hit when the cosine similarity is at least ``threshold``; feedback is only counted."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be a cosine similarity in [-1, 1], not {threshold}")
        self.threshold = threshold
        self.right = 0
        self.wrong = 0
        self._lock = threading.Lock()

    def should_hit(self, entry_key: str, similarity: float) -> bool:
        return similarity >= self.threshold

    def record(self, entry_key: str, similarity: float, correct: bool) -> None:
        with self._lock:
            if correct:
                self.right += 1
            else:
                self.wrong += 1

    def __repr__(self) -> str:
        return f"FixedThreshold({self.threshold})"
