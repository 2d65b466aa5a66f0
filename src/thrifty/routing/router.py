"""The learned router: ``p``, the chance the cheap model answers well, from the prompt embedding.

:func:`train_router` fits a scorer (``scorers.py``: logistic regression, or similarity-weighted
nearest neighbours) on part of the recorded outcomes, keeps a held-out part to choose its
penalty or ``k`` and to calibrate its threshold (a target share of strong calls or a target
quality, ``calibration.py``), and stores the whole calibration curve, so a gateway can choose
another target without the data. Files: small JSON for ``logistic`` (384 weights), ``.npz`` for
either kind (``knn`` keeps the outcomes' float16 vectors); never pickle, no scikit-learn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import ConfigError
from thrifty.routing.calibration import (
    CurvePoint,
    point_for_share,
    routing_curve,
    threshold_for_quality,
)
from thrifty.routing.scorers import LogisticScorer, NeighbourScorer, scorer_class

FORMAT = "thrifty-router/1"
Scorer = LogisticScorer | NeighbourScorer


@dataclass
class LearnedRouter:
    """A fitted router: cheap when ``scorer.score(embedding) >= threshold``.

    Attributes:
        scorer: the fitted scorer (its ``kind`` names it in the file).
        threshold: the calibrated threshold in use.
        embedder: the embedder's name for :func:`thrifty.semantic.embedder.make_embedder`.
        curve: strong share and quality per threshold, on held-out outcomes.
        info: how it was trained (counts, target, penalty or k), for ``thrifty route eval``.
    """

    scorer: Scorer
    threshold: float
    embedder: str = "minilm"
    curve: list[CurvePoint] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.scorer.kind

    @property
    def dim(self) -> int:
        return self.scorer.dim

    def probability(self, vectors: np.ndarray) -> np.ndarray:
        """``p`` for each row of ``vectors`` (``(n, dim)``)."""
        if vectors.shape[-1] != self.dim:
            raise ConfigError(
                f"the router expects {self.dim}-dimensional embeddings "
                f"({self.embedder}), got {vectors.shape[-1]}"
            )
        return self.scorer.score(np.atleast_2d(vectors))

    def retarget(
        self,
        *,
        strong_share: float | None = None,
        quality: float | None = None,
        threshold: float | None = None,
    ) -> LearnedRouter:
        """The same router with its threshold moved along the stored calibration curve.

        Raises:
            ConfigError: more than one target, or a target out of range.
        """
        given = [v for v in (strong_share, quality, threshold) if v is not None]
        if len(given) > 1:
            raise ConfigError("give one of target strong share, target quality, threshold")
        if strong_share is not None:
            new = point_for_share(self.curve, strong_share).threshold
        elif quality is not None:
            new = threshold_for_quality(self.curve, quality).threshold
        elif threshold is not None:
            new = float(threshold)
        else:
            return self
        return LearnedRouter(self.scorer, new, self.embedder, self.curve, dict(self.info))

    # ----------------------------------------------------------------- file
    def _meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": self.kind,
            "embedder": self.embedder,
            "threshold": self.threshold,
            "curve": [c.as_dict() for c in self.curve],
            "info": self.info,
        }

    def save(self, path: str | Path) -> None:
        """JSON, or ``.npz`` by the file's suffix (a ``knn`` router needs ``.npz``).

        Raises:
            ConfigError: a ``knn`` router asked to be written as JSON.
        """
        file = Path(path)
        arrays = self.scorer.arrays()
        if file.suffix == ".npz":
            with file.open("wb") as out:
                payload: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
                payload["meta"] = np.array(json.dumps(self._meta()))
                np.savez_compressed(out, **payload)
            return
        if self.kind != "logistic":
            raise ConfigError(f"{file}: a {self.kind} router keeps vectors: save it as .npz")
        data = {
            **self._meta(),
            "bias": arrays["bias"],
            "weights": [round(float(w), 7) for w in arrays["weights"]],
        }
        file.write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> LearnedRouter:
        """Read a router file (JSON or ``.npz``).

        Raises:
            ConfigError: naming the file, when it is missing, unreadable or not a router.
        """
        file = Path(path)
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"{file}: cannot read the router file: {exc.strerror or exc}"
            ) from exc
        try:
            if raw[:2] == b"PK":  # a zip: .npz
                import io

                with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
                meta = json.loads(str(arrays.pop("meta")))
            else:
                meta = json.loads(raw.decode("utf-8"))
                arrays = meta
        except ValueError as exc:
            raise ConfigError(f"{file}: not a router file (JSON or .npz): {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ConfigError(f"{file}: not a thrifty router file (format {FORMAT!r})")
        try:
            scorer = scorer_class(str(meta.get("kind", "logistic"))).from_arrays(arrays)
            return cls(
                scorer,
                float(meta["threshold"]),
                str(meta.get("embedder", "minilm")),
                [CurvePoint(**c) for c in meta.get("curve", [])],
                dict(meta.get("info") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{file}: the router file is damaged: {exc!r}") from exc


def train_router(
    vectors: np.ndarray,
    cheap_ok: np.ndarray,
    strong_ok: np.ndarray | None = None,
    *,
    embedder: str = "minilm",
    kind: str = "logistic",
    heldout: float = 0.25,
    target_strong_share: float | None = None,
    target_quality: float | None = None,
    seed: int = 0,
) -> LearnedRouter:
    """Fit on part of the outcomes, calibrate the threshold on the rest.

    Args:
        vectors: ``(n, dim)`` prompt embeddings.
        cheap_ok: 1 where the cheap model's answer was good enough.
        strong_ok: 1 where the strong model's answer was good (None: always).
        kind: ``logistic`` or ``knn`` (``scorers.SCORERS``).
        heldout: the share kept out of fitting, for choosing the penalty or k and the threshold.
        target_strong_share, target_quality: at most one; default a 0.4 strong share.

    Raises:
        ConfigError: too few outcomes, a single class, or two targets.
    """
    y = np.asarray(cheap_ok, dtype=np.float64)
    n = len(y)
    if vectors.shape[0] != n or n < 20:
        raise ConfigError(f"need at least 20 outcomes with one embedding each, got {n}")
    if y.min() == y.max():
        raise ConfigError(
            "the outcomes need both cheap answers that were good enough and some that were not"
        )
    if target_strong_share is not None and target_quality is not None:
        raise ConfigError("give a target strong share or a target quality, not both")
    strong = np.ones(n) if strong_ok is None else np.asarray(strong_ok, dtype=np.float64)
    order = np.random.default_rng(seed).permutation(n)
    cut = max(round(n * (1 - heldout)), 10)
    fit, held = order[:cut], order[cut:]
    scorer, chosen = scorer_class(kind).fit(vectors[fit], y[fit], vectors[held], y[held])
    curve = routing_curve(scorer.score(vectors[held]), y[held], strong[held])
    router = LearnedRouter(
        scorer,
        0.0,
        embedder,
        curve,
        {
            "kind": kind,
            "outcomes": n,
            "fit": len(fit),
            "heldout": len(held),
            "cheap_ok_rate": round(float(y.mean()), 5),
            **chosen,
        },
    )
    if target_quality is not None:
        router = router.retarget(quality=target_quality)
        router.info["target_quality"] = target_quality
    else:
        share = 0.4 if target_strong_share is None else target_strong_share
        router = router.retarget(strong_share=share)
        router.info["target_strong_share"] = share
    return router
