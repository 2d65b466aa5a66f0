"""Where to put a router's threshold: a target share of strong calls, or a target quality.

A router gives each request ``p``, the probability that the cheap model's answer is good enough;
a request goes to the cheap model when ``p >= threshold``, else to the strong one. On held-out
outcomes (``cheap_ok``, and ``strong_ok`` when known, else the strong answer is taken as right)
every threshold has a strong share and a quality; :func:`routing_curve` lists them and the two
``threshold_for_*`` functions choose one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from thrifty.errors import ConfigError

#: A threshold above every probability: everything goes to the strong model.
ALL_STRONG = math.nextafter(1.0, 2.0)


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One threshold and what it gives on the held-out outcomes.

    Attributes:
        threshold: cheap when ``p >= threshold``.
        strong_share: fraction of requests sent to the strong model.
        quality: fraction answered well (cheap_ok where cheap, strong_ok where strong).
        relative_quality: ``quality`` over the strong-only quality.
    """

    threshold: float
    strong_share: float
    quality: float
    relative_quality: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in asdict(self).items()}


def _threshold_at(sorted_p: np.ndarray, k: int) -> float:
    """A threshold that sends the ``k`` lowest probabilities to the strong model."""
    n = len(sorted_p)
    if k <= 0:
        return 0.0
    if k >= n:
        return ALL_STRONG
    return float((sorted_p[k - 1] + sorted_p[k]) / 2)


def threshold_for_share(p: np.ndarray, share: float) -> float:
    """The threshold that sends ``share`` of these requests to the strong model.

    Raises:
        ConfigError: ``share`` outside [0, 1] or no probabilities.
    """
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"target strong share must be within [0, 1], not {share}")
    if len(p) == 0:
        raise ConfigError("no held-out outcomes to calibrate the threshold on")
    return _threshold_at(np.sort(p), round(share * len(p)))


def evaluate(
    p: np.ndarray, cheap_ok: np.ndarray, strong_ok: np.ndarray, threshold: float
) -> CurvePoint:
    """Strong share and quality of one threshold on these outcomes."""
    cheap = p >= threshold
    quality = float(np.where(cheap, cheap_ok, strong_ok).mean()) if len(p) else 0.0
    best = float(strong_ok.mean()) if len(p) else 0.0
    return CurvePoint(
        threshold,
        float(1.0 - cheap.mean()) if len(p) else 0.0,
        quality,
        quality / best if best > 0 else 0.0,
    )


def routing_curve(
    p: np.ndarray, cheap_ok: np.ndarray, strong_ok: np.ndarray | None = None, steps: int = 100
) -> list[CurvePoint]:
    """The curve at strong shares 0, 1/steps, …, 1 (cheapest first)."""
    strong = np.ones_like(cheap_ok, dtype=float) if strong_ok is None else strong_ok
    order = np.sort(p)
    points = []
    for i in range(steps + 1):
        threshold = _threshold_at(order, round(i / steps * len(p)))
        points.append(evaluate(p, cheap_ok.astype(float), strong.astype(float), threshold))
    return points


def threshold_for_quality(curve: Sequence[CurvePoint], target: float) -> CurvePoint:
    """The point with the least strong share whose relative quality reaches ``target``.

    Raises:
        ConfigError: ``target`` outside (0, 1] or an empty curve.
    """
    if not 0.0 < target <= 1.0:
        raise ConfigError(f"target quality must be within (0, 1], not {target}")
    if not curve:
        raise ConfigError("the router has no calibration curve")
    for point in sorted(curve, key=lambda c: c.strong_share):
        if point.relative_quality >= target:
            return point
    return max(curve, key=lambda c: (c.relative_quality, -c.strong_share))


def point_for_share(curve: Sequence[CurvePoint], share: float) -> CurvePoint:
    """The calibrated point whose strong share is nearest ``share`` (not above it when one is)."""
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"target strong share must be within [0, 1], not {share}")
    if not curve:
        raise ConfigError("the router has no calibration curve")
    under = [c for c in curve if c.strong_share <= share + 1e-9]
    pool = under or list(curve)
    return min(pool, key=lambda c: (abs(c.strong_share - share), c.strong_share))


def share_for_cost(relative_cost: float, cost_ratio: float) -> float:
    """The strong share whose cost is ``relative_cost`` of strong-only cost, when a cheap call
    costs ``cost_ratio`` of a strong one (every request pays one call): ``s + (1 - s) r = c``.

    Raises:
        ConfigError: a ratio outside [0, 1), or a budget below cheap-only or above strong-only.
    """
    if not 0.0 <= cost_ratio < 1.0:
        raise ConfigError(f"the cheap/strong cost ratio must be within [0, 1), not {cost_ratio}")
    if not cost_ratio <= relative_cost <= 1.0:
        raise ConfigError(
            f"target cost must be within [{cost_ratio:.4f}, 1] of strong-only cost "
            f"(cheap-only costs {cost_ratio:.4f}), not {relative_cost}"
        )
    return (relative_cost - cost_ratio) / (1.0 - cost_ratio)
