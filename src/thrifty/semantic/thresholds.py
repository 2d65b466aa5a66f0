"""Thresholds that hold an error rate: a calibrated global bar and verified per-entry bars.

One cosine bar for every entry is too loose for some questions and too strict for others: on
QQP no fixed bar on all-MiniLM-L6-v2 keeps wrong hits under ~8 % (benchmarks/RESULTS.md). The
verified policy learns, for each cached entry, how similar a question must be for that entry's
answer to be right, from outcomes of questions matched against it (the idea of vCache, arXiv
2502.03771; this is an independent implementation, not its code):

- Each entry ``e`` has an unknown curve ``P(right | s) = sigmoid(k_e · (s − t_e))`` over the
  cosine ``s``. Its parameters live on a grid of ``(t, k)`` cells; the prior weight of each
  cell is fitted on labelled pairs (query streams by default: banking77 ``train`` and a support
  set's fit half; QQP before issue 13), so a new entry starts from
  the population's calibrated curve — that is the global fallback, conservative because the
  prior keeps weight on cells where an answer is wrong even at high similarity.
- Every observation ``(s, right?)`` of the entry (an explored near miss checked against the
  model, a sampled hit re-checked, or explicit feedback) multiplies in its likelihood; the
  posterior over cells is exact on the grid.
- A hit is served if the posterior probability that it is wrong, ``Σ w(cell) · (1 −
  sigmoid(k (s − t)))``, is at most δ, or if its similarity reaches the prior's new-entry bar
  and the entry's evidence makes it no likelier to be wrong than an entry never checked (see
  :class:`VerifiedThreshold`). Otherwise the caller explores: it asks the model (the call a
  miss makes anyway), compares the answers, and records the outcome.
- Optionally (``adapt_every``) the population prior itself is re-estimated from all entries'
  feedback, so a new entry's bar follows the traffic instead of QQP.

Serving only hits whose own probability of being wrong is ≤ δ keeps the share of wrong hits ≤ δ
only as far as the model is calibrated for the traffic; benchmarks/RESULTS.md ("Semantic cache
(issue 5)") shows where that held and where it did not.
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import ConfigError
from thrifty.semantic.base import ThresholdPolicy

#: The prior fitted on query streams (banking77 ``train``, the support set's ``fit`` half) with
#: all-MiniLM-L6-v2 (``benchmarks/fit_semantic_thresholds.py``), on the pairs that the guards and
#: the pair scorer let through, since only those are ever served: fitted on guard-passed pairs
#: alone it spent almost none of δ (0-0.2 % wrong at δ = 2 %). The earlier QQP fit
#: (``assets/verified_prior_minilm_qqp_dev.json``) never served a new entry at δ ≤ 2 %.
DEFAULT_PRIOR_ASSET = "assets/verified_prior_minilm_streams.json"
QQP_PRIOR_ASSET = "assets/verified_prior_minilm_qqp_dev.json"
_T_GRID = np.round(np.arange(0.50, 1.0501, 0.005), 3)
_K_GRID = np.array([8.0, 16.0, 32.0, 64.0, 128.0, 256.0])


def wilson_upper(wrong: float, n: float, z: float = 1.645) -> float:
    """Upper end of the Wilson score interval of a rate ``wrong / n`` (one-sided 95 % at 1.645)."""
    if n <= 0:
        return 1.0
    p = wrong / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


# ------------------------------------------------------------------------ fixed-bar calibration
@dataclass(slots=True)
class ThresholdCurve:
    """Hits and wrong hits of every fixed bar, measured on labelled (query, cached) pairs."""

    thresholds: np.ndarray
    hits: np.ndarray
    wrong: np.ndarray
    pairs: int
    positives: int

    @classmethod
    def measure(
        cls,
        similarities: Sequence[float] | np.ndarray,
        right: Sequence[bool] | np.ndarray,
        thresholds: Iterable[float] | None = None,
    ) -> ThresholdCurve:
        sims = np.asarray(similarities, dtype=np.float64)
        ok = np.asarray(right, dtype=bool)
        if sims.shape != ok.shape or sims.ndim != 1:
            raise ConfigError("similarities and labels must be 1-d and of equal length")
        bars = np.round(np.arange(0.5, 1.0001, 0.005), 3) if thresholds is None else thresholds
        bars = np.asarray(list(bars), dtype=np.float64)
        hit = sims[None, :] >= bars[:, None]
        return cls(
            thresholds=bars,
            hits=hit.sum(axis=1),
            wrong=(hit & ~ok[None, :]).sum(axis=1),
            pairs=len(sims),
            positives=int(ok.sum()),
        )

    def wrong_rate(self) -> np.ndarray:
        return np.where(self.hits > 0, self.wrong / np.maximum(self.hits, 1), 0.0)

    def hit_rate(self) -> np.ndarray:
        """Hits per pair asked."""
        return self.hits / max(self.pairs, 1)

    def best_under(self, max_wrong_rate: float, *, z: float = 1.645, min_hits: int = 20) -> float:
        """The lowest bar (most hits) whose wrong-hit rate is ≤ ``max_wrong_rate`` with 95 %
        confidence (Wilson upper bound); ``math.inf`` when no bar qualifies."""
        for bar, hits, wrong in zip(self.thresholds, self.hits, self.wrong, strict=True):
            if hits >= min_hits and wilson_upper(wrong, hits, z) <= max_wrong_rate:
                return float(bar)
        return math.inf

    def best_f_beta(self, beta: float = 0.5) -> float:
        """The bar with the best F-beta of (precision = right hits / hits, recall = right hits /
        positives); beta < 1 weighs precision, i.e. wrong answers, above missed savings."""
        right = self.hits - self.wrong
        precision = np.where(self.hits > 0, right / np.maximum(self.hits, 1), 0.0)
        recall = right / max(self.positives, 1)
        b2 = beta * beta
        denom = b2 * precision + recall
        score = np.where(denom > 0, (1 + b2) * precision * recall / np.maximum(denom, 1e-12), 0)
        return float(self.thresholds[int(np.argmax(score))])


# ------------------------------------------------------------------------------ the prior
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow warnings for large |x|


def _em_weights(
    logliks: np.ndarray,
    start: np.ndarray,
    *,
    iterations: int,
    counts: np.ndarray | None = None,
    base: np.ndarray | None = None,
    strength: float = 0.0,
) -> np.ndarray:
    """Grid weights that maximise the likelihood of entries' observations, by EM.

    ``logliks`` is ``(entries, t, k)``; ``counts`` says how many entries each row stands for
    (default one each); ``base`` weights, if given, are a Dirichlet prior worth ``strength``
    entries. Starts from ``start``."""
    lik = np.exp(logliks - logliks.max(axis=(1, 2), keepdims=True))
    n = np.ones(len(lik)) if counts is None else counts
    pseudo = strength * base if base is not None else 0.0
    total = n.sum() + (strength if base is not None else 0.0)
    w = start
    for _ in range(iterations):
        post = lik * w[None]
        post /= post.sum(axis=(1, 2), keepdims=True)
        w = (np.tensordot(n, post, axes=1) + pseudo) / total
    return w


@dataclass(slots=True)
class SigmoidPrior:
    """Weights over a grid of per-entry curves ``P(right | s) = sigmoid(k (s − t))``."""

    t: np.ndarray
    k: np.ndarray
    weights: np.ndarray
    """``(len(t), len(k))``, summing to 1."""
    source: str = ""
    """What it was fitted on (documentation only)."""
    new_entry_bar: float | None = None
    """The cosine at which an entry with no evidence against it is served, fitted with the prior
    on the same traffic (None: only by δ). See :class:`VerifiedThreshold`."""

    @classmethod
    def uniform(cls) -> SigmoidPrior:
        w = np.full((len(_T_GRID), len(_K_GRID)), 1.0)
        return cls(_T_GRID.copy(), _K_GRID.copy(), w / w.sum(), "uniform")

    @classmethod
    def fit(
        cls,
        groups: Iterable[tuple[Sequence[float], Sequence[bool]]],
        *,
        iterations: int = 300,
        floor: float = 1e-4,
        source: str = "",
    ) -> SigmoidPrior:
        """Fit the weights by EM (non-parametric maximum likelihood) on labelled observations
        grouped by cached entry: each group is one entry's ``(similarities, right?)``. Entries
        with several observations tell how much one entry's outcomes agree with each other.
        ``floor`` keeps every cell possible so no entry is ever judged certain by the prior.
        """
        prior = cls.uniform()
        # Entries with the same observations (similarities to 3 decimals) share a likelihood:
        # most entries have one or two, so this shrinks the EM from entries to distinct groups.
        counts: dict[tuple[tuple[float, bool], ...], int] = {}
        for sims, right in groups:
            if len(sims):
                pairs = zip(sims, right, strict=True)
                key = tuple(sorted((round(float(s), 3), bool(r)) for s, r in pairs))
                counts[key] = counts.get(key, 0) + 1
        if not counts:
            raise ConfigError("no observations to fit a prior on")
        ll = np.stack(
            [
                prior._loglik(np.array([s for s, _ in k]), np.array([r for _, r in k]))
                for k in counts
            ]
        )  # (distinct groups, t, k)
        n = np.array(list(counts.values()), dtype=np.float64)
        w = _em_weights(ll, prior.weights, counts=n, iterations=iterations)
        w = (1 - floor) * w + floor / w.size
        return cls(prior.t, prior.k, w / w.sum(), source)

    def _loglik(self, sims: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Log-likelihood of the observations under every cell, ``(len(t), len(k))``."""
        z = self.k[None, None, :] * (sims[:, None, None] - self.t[None, :, None])
        p = np.clip(_sigmoid(z), 1e-9, 1 - 1e-9)
        return np.where(right[:, None, None], np.log(p), np.log1p(-p)).sum(axis=0)

    def loglik(self, sims: Sequence[float], right: Sequence[bool]) -> np.ndarray:
        """Log-likelihood of one entry's observations under every cell, ``(len(t), len(k))``."""
        return self._loglik(np.asarray(sims, dtype=np.float64), np.asarray(right, dtype=bool))

    def posterior(self, loglik: np.ndarray) -> np.ndarray:
        """Cell weights of an entry given its :meth:`loglik`."""
        ll = loglik + np.log(self.weights)
        post = np.exp(ll - ll.max())
        return post / post.sum()

    def adapt(
        self, logliks: np.ndarray, base: SigmoidPrior, *, strength: float, iterations: int = 20
    ) -> SigmoidPrior:
        """The population prior re-estimated from the entries' own feedback (empirical Bayes):
        EM over ``logliks`` ``(entries, t, k)``, starting from these weights, with ``base``'s
        weights as a Dirichlet prior worth ``strength`` entries, so that a few hundred observed
        entries move the prior towards this traffic and a handful hardly do. Which similarities
        were checked depends only on the similarity and on past outcomes, so the selection does
        not bias this likelihood."""
        w = _em_weights(
            logliks, self.weights, base=base.weights, strength=strength, iterations=iterations
        )
        source = base.source + " + adapted online"
        return SigmoidPrior(self.t, self.k, w / w.sum(), source, base.new_entry_bar)

    def wrong_probability(self, weights: np.ndarray, similarity: float) -> float:
        """``P(wrong | s)`` averaged over the cells with ``weights``."""
        p_right = _sigmoid(self.k[None, :] * (similarity - self.t[:, None]))
        return float((weights * (1.0 - p_right)).sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.t.tolist(),
            "k": self.k.tolist(),
            "weights": np.round(self.weights, 8).tolist(),
            "source": self.source,
            **({} if self.new_entry_bar is None else {"new_entry_bar": self.new_entry_bar}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SigmoidPrior:
        w = np.asarray(data["weights"], dtype=np.float64)
        t, k = np.asarray(data["t"], float), np.asarray(data["k"], float)
        if w.shape != (len(t), len(k)) or not np.isfinite(w).all() or w.sum() <= 0:
            raise ConfigError("prior weights must be a finite (len(t), len(k)) grid")
        bar = data.get("new_entry_bar")
        if bar is not None and not (isinstance(bar, (int, float)) and -1.0 <= bar <= 1.0):
            raise ConfigError(f"new_entry_bar must be a cosine similarity, not {bar!r}")
        return cls(t, k, w / w.sum(), data.get("source", ""), None if bar is None else float(bar))

    @classmethod
    def default(cls, asset: str = DEFAULT_PRIOR_ASSET) -> SigmoidPrior:
        """A prior shipped with thrifty: by default the one fitted on query streams with
        all-MiniLM-L6-v2; ``QQP_PRIOR_ASSET`` for the earlier QQP ``dev`` fit."""
        raw = resources.files("thrifty.semantic").joinpath(asset).read_text()
        return cls.from_dict(json.loads(raw))


# ----------------------------------------------------------------------- the verified policy
@dataclass(slots=True)
class _Evidence:
    sims: list[float] = field(default_factory=list)
    right: list[bool] = field(default_factory=list)
    loglik: np.ndarray | None = None  # of the observations, per cell (float32, lazily)
    weights: np.ndarray | None = None  # posterior, recomputed lazily after a change


class VerifiedThreshold(ThresholdPolicy):
    """Per-entry thresholds learned from feedback so that wrong hits stay under ``delta``.

    Args:
        delta: the largest acceptable probability that a served hit is wrong (e.g. 0.01).
        prior: the population prior (default: fitted on query streams for all-MiniLM-L6-v2;
            fit your own with :meth:`SigmoidPrior.fit` on labelled pairs of your traffic).
        explore_floor: below this similarity a candidate is a plain miss, not worth a check.
        verify_rate: share of served hits that are still re-checked against the model, so
            entries keep learning (and a drift in answers is noticed).
        max_observations: per entry, the most recent observations kept.
        adapt_every: re-estimate the population prior from all entries' feedback after this many
            new observations (default None: keep the given prior), so new entries of easy
            traffic get a lower bar and those of hard traffic a higher one. Off by default.
        prior_strength: how many entries' worth of evidence the given prior counts for when it
            is re-estimated.
        adapt_share: the weight of the re-estimated prior in the one new entries start from,
            the rest being the given prior. A new entry's probability of a wrong hit is then
            never below ``(1 - adapt_share)`` times the given prior's, so the new-entry bar
            cannot fall below the given prior's bar at ``δ / (1 - adapt_share)``, however
            one-sided the checks: on an intent-sorted stream every check agrees until the
            intent changes, and an unbounded re-estimate collapsed there (issue 13).
        seed: seeds the sampling of re-checks (reproducible benchmarks).
        new_entry_bar: the cosine from which an entry is served while nothing learned about it
            says it is likelier to be wrong than an entry never checked; an entry a check found
            wrong still needs ``P(wrong) ≤ δ``. None: the prior's own (``new_entry_bar`` in its
            file; the shipped prior has none); ``math.inf``: by δ alone. Why: the prior says a
            new entry at 0.95 is wrong 2.3 % of the time, so by δ = 1 % alone it needs 0.991
            and a typo, a filler word or a paraphrase of a question never checked is rarely
            served (13.5 % of the hard pairs' same-answer pairs; 50 % with the bar at 0.94, the
            fixed default). The price is on fine-grained intents: banking77 ``test`` over three
            orders, δ = 1 %, 1.50 → 1.83 % of hits wrong (13.7 → 15.4 % served); so it is an
            option, not the default (benchmarks/RESULTS.md, "Semantic decisions on hard
            pairs").

    Use: ``should_hit`` → serve; else if ``wants_verification`` → ask the model, compare its
    answer with the cached one and ``record`` the outcome (exploration). Explicit feedback
    ("that answer was wrong") goes through ``record`` too.
    """

    def __init__(
        self,
        delta: float = 0.01,
        *,
        prior: SigmoidPrior | None = None,
        explore_floor: float = 0.7,
        verify_rate: float = 0.0,
        max_observations: int = 64,
        adapt_every: int | None = None,
        prior_strength: float = 200.0,
        adapt_share: float = 0.5,
        seed: int | None = None,
        new_entry_bar: float | None = None,
    ) -> None:
        if not 0.0 < delta < 1.0:
            raise ConfigError(f"delta must be a probability in (0, 1), not {delta}")
        if not 0.0 <= verify_rate <= 1.0:
            raise ConfigError(f"verify_rate must be in [0, 1], not {verify_rate}")
        if max_observations < 1:
            raise ConfigError("max_observations must be at least 1")
        if adapt_every is not None and adapt_every < 1:
            raise ConfigError("adapt_every must be at least 1 (or None)")
        if not 0.0 <= adapt_share < 1.0:
            raise ConfigError(f"adapt_share must be in [0, 1), not {adapt_share}")
        self.adapt_share = adapt_share
        self.delta = delta
        self.base_prior = prior if prior is not None else SigmoidPrior.default()
        self.prior = self.base_prior
        bar = self.base_prior.new_entry_bar if new_entry_bar is None else new_entry_bar
        if bar is not None and not (-1.0 <= bar <= 1.0 or bar == math.inf):
            raise ConfigError(f"new_entry_bar must be a cosine similarity or inf, not {bar}")
        self.new_entry_bar = math.inf if bar is None else float(bar)
        self.adapt_every = adapt_every
        self.prior_strength = prior_strength
        self._since_adapt = 0
        self.explore_floor = explore_floor
        self.verify_rate = verify_rate
        self.max_observations = max_observations
        self._entries: dict[str, _Evidence] = {}
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.new_entry_threshold = self._bar_for(self.prior.weights)

    def _bar_for(self, weights: np.ndarray) -> float:
        """The lowest similarity at which an entry with these weights may be served."""
        sims = np.round(np.arange(0.5, 1.0001, 0.001), 3)
        p = self.prior
        p_right = _sigmoid(p.k[None, None, :] * (sims[:, None, None] - p.t[None, :, None]))
        wrong = (weights[None] * (1.0 - p_right)).sum(axis=(1, 2))
        ok = wrong <= self.delta
        if math.isfinite(self.new_entry_bar):
            usual = (p.weights[None] * (1.0 - p_right)).sum(axis=(1, 2))
            ok |= (sims >= self.new_entry_bar) & (wrong <= usual + 1e-12)
        found = np.nonzero(ok)[0]
        return float(sims[found[0]]) if len(found) else math.inf

    def _serves(self, weights: np.ndarray, similarity: float) -> bool:
        """``P(wrong) ≤ δ``, or at the new-entry bar no likelier wrong than a new entry."""
        wrong = self.prior.wrong_probability(weights, similarity)
        if wrong <= self.delta:
            return True
        if similarity < self.new_entry_bar:
            return False
        return wrong <= self.prior.wrong_probability(self.prior.weights, similarity) + 1e-12

    # ------------------------------------------------------------------ decisions
    def wrong_probability(self, entry_key: str, similarity: float) -> float:
        """The posterior probability that serving ``entry_key`` at ``similarity`` is wrong."""
        return self.prior.wrong_probability(self._weights(entry_key), similarity)

    def threshold(self, entry_key: str) -> float:
        """The entry's current bar (``inf``: never served until more feedback arrives)."""
        with self._lock:
            evidence = self._entries.get(entry_key)
        if evidence is None:
            return self.new_entry_threshold
        return self._bar_for(self._weights(entry_key))

    def should_hit(self, entry_key: str, similarity: float) -> bool:
        if entry_key not in self._entries:  # a new entry: the calibrated global bar
            return similarity >= self.new_entry_threshold
        return self._serves(self._weights(entry_key), similarity)

    def wants_verification(self, entry_key: str, similarity: float) -> bool:
        if similarity < self.explore_floor:
            return False
        if not self.should_hit(entry_key, similarity):
            return True  # explore: the only way this entry's bar can come down
        return self.verify_rate > 0 and self._random.random() < self.verify_rate

    def record(self, entry_key: str, similarity: float, correct: bool) -> None:
        with self._lock:
            self._add(entry_key, similarity, correct)
            if self.adapt_every is not None and self._since_adapt >= self.adapt_every:
                self._adapt()

    def _add(self, entry_key: str, similarity: float, correct: bool) -> None:
        """One observation into the entry's evidence (lock held)."""
        evidence = self._entries.setdefault(entry_key, _Evidence())
        evidence.sims.append(float(similarity))
        evidence.right.append(bool(correct))
        if len(evidence.sims) > self.max_observations:
            del evidence.sims[0], evidence.right[0]
            evidence.loglik = None
        elif evidence.loglik is not None:
            evidence.loglik += self.prior.loglik([similarity], [correct]).astype(np.float32)
        evidence.weights = None
        self._since_adapt += 1

    def _adapt(self) -> None:
        """Re-estimate the population prior from every entry's observations (lock held)."""
        self._since_adapt = 0
        groups = {id(ev): ev for ev in self._entries.values()}  # linked entries share one
        own = [self._loglik_of(ev) for ev in groups.values()]
        if not own:
            return
        adapted = self.prior.adapt(np.stack(own), self.base_prior, strength=self.prior_strength)
        share = self.adapt_share
        mixed = (1.0 - share) * self.base_prior.weights + share * adapted.weights
        self.prior = SigmoidPrior(adapted.t, adapted.k, mixed / mixed.sum(), adapted.source)
        for evidence in self._entries.values():
            evidence.weights = None
        self.new_entry_threshold = self._bar_for(self.prior.weights)

    def _loglik_of(self, evidence: _Evidence) -> np.ndarray:
        if evidence.loglik is None:
            evidence.loglik = self.prior.loglik(evidence.sims, evidence.right).astype(np.float32)
        return evidence.loglik

    def forget(self, entry_key: str) -> None:
        with self._lock:
            self._entries.pop(entry_key, None)

    def link(self, entry_key: str, source_key: str) -> None:
        """``entry_key`` shares ``source_key``'s evidence from now on (a check found that they
        get the same answer): paraphrases of either are judged by what was learned about the
        whole group of questions with that answer, and every later outcome, a wrong one
        included, moves the bar of all of them."""
        with self._lock:
            source = self._entries.get(source_key)
            if source is None or entry_key == source_key:
                return
            self._entries[entry_key] = source

    def linked(self, entry_key: str, other_key: str) -> bool:
        """True when the two entries share evidence (:meth:`link`): a check found that they
        get the same answer (neighbourhood agreement counts them as agreeing)."""
        with self._lock:
            evidence = self._entries.get(entry_key)
            return evidence is not None and evidence is self._entries.get(other_key)

    def observations(self, entry_key: str) -> list[tuple[float, bool]]:
        with self._lock:
            evidence = self._entries.get(entry_key)
            return [] if evidence is None else list(zip(evidence.sims, evidence.right, strict=True))

    def _weights(self, entry_key: str) -> np.ndarray:
        with self._lock:
            evidence = self._entries.get(entry_key)
            if evidence is None:
                return self.prior.weights
            if evidence.weights is None:
                evidence.weights = self.prior.posterior(self._loglik_of(evidence))
            return evidence.weights

    # ------------------------------------------------------------------ persistence
    def dump(self) -> dict[str, Any]:
        """Every entry's observations, JSON-ready (the prior is configuration, not state)."""
        with self._lock:
            entries = {
                key: [[s, int(r)] for s, r in zip(ev.sims, ev.right, strict=True)]
                for key, ev in self._entries.items()
            }
        return {"version": 1, "delta": self.delta, "entries": entries}

    def load(self, data: dict[str, Any]) -> None:
        """Add the observations of a :meth:`dump` (later observations win the size cap); with
        ``adapt_every``, the population prior is then re-estimated once from all of them."""
        if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
            raise ConfigError("not a VerifiedThreshold dump")
        try:  # read all before adding any, so a bad file changes nothing
            rows = [
                (str(key), float(similarity), bool(correct))
                for key, observations in data["entries"].items()
                for similarity, correct in observations
            ]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"malformed VerifiedThreshold dump: {exc}") from exc
        with self._lock:
            for key, similarity, correct in rows:
                self._add(key, similarity, correct)
            if self.adapt_every is not None and self._entries:
                self._adapt()

    def save(self, path: str | Path) -> None:
        """Write :meth:`dump` to ``path`` atomically (a sidecar file beside the store)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.dump(), fh)
        os.replace(tmp, target)

    def restore(self, path: str | Path) -> bool:
        """Load a file written by :meth:`save`; False when there is none yet."""
        target = Path(path)
        if not target.is_file():
            return False
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ConfigError(f"unreadable threshold state {target}: {exc}") from exc
        self.load(data)
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"VerifiedThreshold(delta={self.delta}, entries={len(self)})"


# ------------------------------------------------------------------------ answer comparison
AnswerCheck = Callable[[str, str], bool]
"""Says whether a fresh model answer agrees with the cached one (the feedback of a check)."""


def normalized_match(cached: str, fresh: str) -> bool:
    """Equal after lower-casing and collapsing whitespace and punctuation (labels, short facts)."""
    return _normalize(cached) == _normalize(fresh)


def _normalize(text: str) -> str:
    return " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def embedding_match(embed: Callable[[list[str]], np.ndarray], min_similarity: float = 0.9):
    """An :data:`AnswerCheck` that calls two long answers the same when their embeddings are
    close (``embed`` is e.g. ``Embedder.embed``); exact normalized equality always agrees."""

    def check(cached: str, fresh: str) -> bool:
        if normalized_match(cached, fresh):
            return True
        a, b = embed([cached, fresh])
        return float(np.dot(a, b)) >= min_similarity

    return check
