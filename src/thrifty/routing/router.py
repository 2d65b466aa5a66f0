"""The learned router: ``p``, the chance the cheap model answers well, from the prompt embedding
(and, with ``inputs="embedding+prompt"``, the cheap prompt features of ``prompt_features.py``).

:func:`train_router` fits a scorer (``kinds.SCORERS``: logistic regression, similarity-weighted
nearest neighbours, a small MLP, a matrix-factorisation scorer, or the ``grouped`` head that
learns a prompt's group, e.g. MMLU's subject, as a prior) on part of the recorded
outcomes, keeps a held-out part to choose its penalty, ``k`` or width and to calibrate its
threshold (a target share of strong calls or a target
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
    share_for_cost,
    threshold_for_quality,
)
from thrifty.routing.difficulty import N_DIFFICULTY, difficulty_matrix
from thrifty.routing.kinds import Scorer, scorer_class
from thrifty.routing.prompt_features import FEATURES, prompt_features

FORMAT = "thrifty-router/1"
#: What a router reads: the embedding alone, or the embedding then the cheap prompt features
#: (then the 26 multiple-choice difficulty features, ``difficulty.py``, read by ``stack``).
INPUTS = ("embedding", "embedding+prompt", "embedding+prompt+difficulty")
#: What a router learns to predict (``p``): ``cheap_ok``, the cheap answer was right; or
#: ``no_gain``, the strong model would not have done better (the cheap answer was right, or the
#: strong one was wrong too): a prompt both models miss is no reason to pay for the strong one.
LABELS = ("cheap_ok", "no_gain")


def routing_label(cheap_ok: np.ndarray, strong_ok: np.ndarray, label: str) -> np.ndarray:
    """The 0/1 target of ``label`` (:data:`LABELS`).

    Raises:
        ConfigError: an unknown label.
    """
    if label not in LABELS:
        raise ConfigError(f"unknown router label {label!r}; use one of: {', '.join(LABELS)}")
    cheap = np.asarray(cheap_ok, dtype=np.float64)
    if label == "cheap_ok":
        return cheap
    return 1.0 - (1.0 - cheap) * np.asarray(strong_ok, dtype=np.float64)


def router_inputs(vectors: np.ndarray, texts: list[str] | None, inputs: str) -> np.ndarray:
    """The matrix a scorer reads for ``inputs`` (:data:`INPUTS`).

    Raises:
        ConfigError: an unknown ``inputs``, or prompt features asked for without the texts.
    """
    if inputs not in INPUTS:
        raise ConfigError(f"unknown router inputs {inputs!r}; use one of: {', '.join(INPUTS)}")
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    if inputs == "embedding":
        return vectors
    if texts is None or len(texts) != len(vectors):
        raise ConfigError("this router reads the prompt texts too: pass one text per embedding")
    parts = [vectors, prompt_features(texts)]
    if inputs == "embedding+prompt+difficulty":
        parts.append(difficulty_matrix(texts))
    return np.hstack(parts)


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
    inputs: str = "embedding"

    @property
    def kind(self) -> str:
        return self.scorer.kind

    @property
    def dim(self) -> int:
        """The embedding's width (the prompt features, when read, come on top)."""
        extra = {"embedding": 0, "embedding+prompt": len(FEATURES)}.get(
            self.inputs, len(FEATURES) + N_DIFFICULTY
        )
        return self.scorer.dim - extra

    def probability(self, vectors: np.ndarray, texts: list[str] | None = None) -> np.ndarray:
        """``p`` for each row of ``vectors`` (``(n, dim)``); ``texts`` (the prompts) when the
        router reads prompt features too.

        Raises:
            ConfigError: embeddings of another width, or texts missing where they are needed.
        """
        if vectors.shape[-1] != self.dim:
            raise ConfigError(
                f"the router expects {self.dim}-dimensional embeddings "
                f"({self.embedder}), got {vectors.shape[-1]}"
            )
        return self.scorer.score(router_inputs(vectors, texts, self.inputs))

    def retarget(
        self,
        *,
        strong_share: float | None = None,
        quality: float | None = None,
        threshold: float | None = None,
        relative_cost: float | None = None,
        cost_ratio: float | None = None,
    ) -> LearnedRouter:
        """The same router with its threshold moved along the stored calibration curve.

        ``relative_cost`` is a dollar budget as a share of strong-only cost, with ``cost_ratio``
        the cheap model's cost per request over the strong one's (default: the one stored at
        training).

        Raises:
            ConfigError: more than one target, or a target out of range.
        """
        given = [v for v in (strong_share, quality, threshold, relative_cost) if v is not None]
        if len(given) > 1:
            raise ConfigError(
                "give one of target strong share, target quality, target cost, threshold"
            )
        if relative_cost is not None:
            ratio = cost_ratio if cost_ratio is not None else self.info.get("cost_ratio")
            if ratio is None:
                raise ConfigError("a target cost needs the cheap/strong cost ratio")
            strong_share = share_for_cost(relative_cost, float(ratio))
        if strong_share is not None:
            new = point_for_share(self.curve, strong_share).threshold
        elif quality is not None:
            new = threshold_for_quality(self.curve, quality).threshold
        elif threshold is not None:
            new = float(threshold)
        else:
            return self
        return LearnedRouter(
            self.scorer, new, self.embedder, self.curve, dict(self.info), self.inputs
        )

    # ----------------------------------------------------------------- file
    def _meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": self.kind,
            "embedder": self.embedder,
            "inputs": self.inputs,
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
        if self.kind in ("knn", "stack"):
            raise ConfigError(f"{file}: a {self.kind} router keeps vectors: save it as .npz")
        data = {
            **self._meta(),
            **{k: np.round(np.asarray(v, dtype=np.float64), 7).tolist() for k, v in arrays.items()},
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
                str(meta.get("inputs", "embedding")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{file}: the router file is damaged: {exc!r}") from exc


def train_router(
    vectors: np.ndarray,
    cheap_ok: np.ndarray,
    strong_ok: np.ndarray | None = None,
    *,
    texts: list[str] | None = None,
    groups: list[str | None] | None = None,
    embedder: str = "minilm",
    kind: str = "logistic",
    inputs: str = "embedding",
    label: str = "cheap_ok",
    heldout: float = 0.25,
    target_strong_share: float | None = None,
    target_quality: float | None = None,
    target_cost: float | None = None,
    cost_ratio: float | None = None,
    seed: int = 0,
) -> LearnedRouter:
    """Fit on part of the outcomes, calibrate the threshold on the rest.

    Args:
        vectors: ``(n, dim)`` prompt embeddings.
        cheap_ok: 1 where the cheap model's answer was good enough.
        strong_ok: 1 where the strong model's answer was good (None: always).
        texts: the prompts (needed for ``inputs="embedding+prompt"``).
        groups: each prompt's known group (an MMLU subject), learned by the ``grouped`` head
            only (k-means clusters stand in when absent); routing never needs them.
        kind: ``logistic``, ``knn``, ``mlp``, ``mf`` or ``grouped`` (``kinds.SCORERS``).
        inputs: ``embedding`` or ``embedding+prompt`` (:data:`INPUTS`).
        label: what ``p`` predicts, ``cheap_ok`` or ``no_gain`` (:data:`LABELS`).
        heldout: the share kept out of fitting, for choosing the penalty or k and the threshold.
        target_strong_share, target_quality, target_cost: at most one; default a 0.4 strong
            share. ``target_cost`` is a share of strong-only cost and needs ``cost_ratio``
            (cheap over strong cost per request), which is stored for later retargeting.

    Raises:
        ConfigError: too few outcomes, a single class, or two targets.
    """
    strong = (
        np.ones(len(cheap_ok)) if strong_ok is None else np.asarray(strong_ok, dtype=np.float64)
    )
    y = routing_label(np.asarray(cheap_ok, dtype=np.float64), strong, label)
    n = len(y)
    if vectors.shape[0] != n or n < 20:
        raise ConfigError(f"need at least 20 outcomes with one embedding each, got {n}")
    if y.min() == y.max():
        raise ConfigError(
            "the outcomes need both cheap answers that were good enough and some that were not"
        )
    targets = [t for t in (target_strong_share, target_quality, target_cost) if t is not None]
    if len(targets) > 1:
        raise ConfigError("give one target (strong share, quality or cost), not both")
    if kind == "stack" and inputs != "embedding+prompt+difficulty":
        raise ConfigError("a stack router reads --inputs embedding+prompt+difficulty")
    x = router_inputs(vectors, texts, inputs)
    cls = scorer_class(kind)
    both = np.column_stack([np.asarray(cheap_ok, dtype=np.float64), strong])
    fit_y = both if getattr(cls, "needs_both", False) else y
    group_names: list[str] = []
    if getattr(cls, "needs_groups", False):
        named = [g for g in groups or [] if g is not None]
        if groups is not None and (len(groups) != n or len(named) != n):
            raise ConfigError("give every outcome its group, or none at all")
        group_names = sorted(set(named))
        index = {g: i for i, g in enumerate(group_names)}
        group_ids = [index[g] for g in named] if named else [-1] * n  # -1: k-means makes them
        fit_y = np.column_stack([both, np.asarray(group_ids, dtype=np.float64)])
    order = np.random.default_rng(seed).permutation(n)
    cut = max(round(n * (1 - heldout)), 10)
    fit, held = order[:cut], order[cut:]
    scorer, chosen = cls.fit(x[fit], fit_y[fit], x[held], fit_y[held])
    cheap = both[:, 0]
    curve = routing_curve(scorer.score(x[held]), cheap[held], strong[held])
    info: dict[str, Any] = {
        "kind": kind,
        "inputs": inputs,
        "label": label,
        "outcomes": n,
        "fit": len(fit),
        "heldout": len(held),
        "cheap_ok_rate": round(float(cheap.mean()), 5),
        **chosen,
    }
    if group_names:
        info["group_names"] = group_names
    if cost_ratio is not None:
        info["cost_ratio"] = cost_ratio
    router = LearnedRouter(scorer, 0.0, embedder, curve, info, inputs)
    if target_quality is not None:
        router = router.retarget(quality=target_quality)
        router.info["target_quality"] = target_quality
    elif target_cost is not None:
        router = router.retarget(relative_cost=target_cost)
        router.info["target_cost"] = target_cost
    else:
        share = 0.4 if target_strong_share is None else target_strong_share
        router = router.retarget(strong_share=share)
        router.info["target_strong_share"] = share
    return router
