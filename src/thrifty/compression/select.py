"""Which units to keep: the best-scoring ones that fit the token target, repeats left out, then
enough more to reach the floor.

Greedy by score with skipping (a long unit that does not fit leaves room for a shorter one) is
what extractive compressors do (RECOMP's baseline, LangChain's filters rank the same way); it is
deterministic because ties go to the earlier unit.
"""

from __future__ import annotations

import numpy as np


def select(
    scores: np.ndarray,
    tokens: np.ndarray,
    vectors: np.ndarray,
    *,
    target: int,
    floor: int,
    redundancy: float,
) -> np.ndarray:
    """A boolean mask of the units to keep.

    Args:
        scores: per-unit scores (higher first).
        tokens: per-unit token counts.
        vectors: per-unit L2-normalized embeddings (for the repeat test).
        target: the most tokens to keep, unless the floor needs more.
        floor: the fewest tokens to keep (capped at what there is).
        redundancy: a unit whose cosine to a kept unit exceeds this is not kept (1.0 or more:
            never).
    """
    order = np.argsort(-scores, kind="stable")
    keep = np.zeros(len(scores), dtype=bool)
    kept: list[int] = []
    used = 0
    for i in order.tolist():
        size = int(tokens[i])
        if used + size > target:
            continue
        if kept and redundancy < 1.0 and float((vectors[kept] @ vectors[i]).max()) > redundancy:
            continue
        keep[i] = True
        kept.append(i)
        used += size
    floor = min(floor, int(tokens.sum()))
    if used < floor:
        for i in order.tolist():
            if used >= floor:
                break
            if not keep[i]:
                keep[i] = True
                used += int(tokens[i])
    return keep
