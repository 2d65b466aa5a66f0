"""Neighbourhood agreement: what the other candidates near a query say about serving it.

One cosine says how close a query is to one cached question; the other candidates the search
found say where the query sits. When cached questions near it carry *different* answers, the
query lies on a boundary between them (banking77's "How to verify my identity" filed under two
intents): serving the nearest answer there is a coin toss, so the hit is refused (or needs
``conflict_bar``). When two or more distinct entries near it agree on the answer, the region is
consistent and a hit may be served from a lower bar (``agree_bar``).

The neighbourhood of the deciding candidate (the one the policy judges) is every other live
candidate the guards pass whose cosine with the query is at least
``max(floor, similarity − margin)``. Answer identity is the caller's (``SemanticMatcher``: equal
answer texts after normalising, the cache's answer check on short ones, or entries linked by a
verification that agreed; the benchmarks: the same label). ``SemanticMatcher`` alone has none
unless given one; ``thrifty.Cache`` turns the default rule on (``SemanticSettings.agreement``).

Answers are compared as labels only when they are short. Free-text answers to two wordings of
one question are worded differently (names, order numbers, phrasing): a difference between them is
no evidence of a different answer, and an embedding check that calls them alike is weak evidence
of the same one. So a neighbour whose answer is longer than ``label_words`` words agrees only when
the texts are equal after normalising (or a verification linked the entries) and otherwise
neither agrees nor conflicts (:meth:`NeighbourhoodAgreement.compared`); the caller's answer check
is asked about short answers only. Measured on the support stream with its free-text responses
as answers (``benchmarks/bench_semantic_agreement_answers.py``): counting every difference as a
conflict cut hits from 16.5 % to 2-3 %; trusting the embedding check on long answers served
23.0 % at 1.1 % wrong (0.27 % without agreement). Figures: benchmarks/RESULTS.md ("Semantic policy
on query streams").
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from thrifty.errors import ConfigError
from thrifty.semantic.thresholds import normalized_match


class Region(enum.Enum):
    """Where the query sits, as far as its neighbours tell."""

    ALONE = "alone"
    """No other candidate near enough (or too few agreeing): the policy decides alone."""
    CONSISTENT = "consistent"
    """At least ``min_agree`` distinct entries near it, all with the same answer."""
    CONFLICT = "conflict"
    """A candidate near it carries a different answer than the deciding one."""


@dataclass(frozen=True, slots=True)
class NeighbourhoodAgreement:
    """The rule; see the module docstring. The defaults were chosen on dev streams (banking77
    ``train``, also cut to its first 3,080 queries, and the support set's fit half, 3 shuffled
    orders each): ``floor`` 0.75 and ``agree_bar`` 0.85 kept wrong hits ≤ 1 % pooled on each
    with fixed 0.94 and verified δ = 1 %; a floor of 0.80 or 0.85 let more boundary queries
    through (``benchmarks/bench_semantic_agreement.py``).

    Args:
        margin: a candidate is a neighbour when its cosine is within ``margin`` of the deciding
            candidate's (and at least ``floor``).
        floor: neighbours below this cosine say nothing.
        min_agree: distinct entries (the deciding one included) that must agree, with no
            neighbour disagreeing, for the region to be consistent.
        agree_bar: in a consistent region a candidate is served from this cosine even where the
            policy refuses it (None: agreement never lowers a bar).
        conflict_bar: in a conflict a hit the policy allows is served only from this cosine
            (``inf``: never; the candidate is then handled like one the policy refused).
        k: candidates the search returns when agreement is on (the matcher's own ``k`` if
            larger).
        label_words: answers of at most this many words are compared as labels (equal, or
            the caller's check); a longer one agrees only when equal and otherwise says nothing
            (None: every answer is compared as a label).
    """

    margin: float = 0.2
    floor: float = 0.75
    min_agree: int = 2
    agree_bar: float | None = 0.85
    conflict_bar: float = math.inf
    k: int = 8
    label_words: int | None = 8

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin <= 2.0:
            raise ConfigError(f"margin must be in [0, 2], not {self.margin}")
        if not -1.0 <= self.floor <= 1.0:
            raise ConfigError(f"floor must be a cosine similarity, not {self.floor}")
        if self.min_agree < 2:
            raise ConfigError("min_agree counts the deciding entry: it must be at least 2")
        if self.agree_bar is not None and not -1.0 <= self.agree_bar <= 1.0:
            raise ConfigError(f"agree_bar must be a cosine similarity, not {self.agree_bar}")
        if not (-1.0 <= self.conflict_bar <= 1.0 or self.conflict_bar == math.inf):
            raise ConfigError(
                f"conflict_bar must be a cosine similarity or inf, not {self.conflict_bar}"
            )
        if self.k < 2:
            raise ConfigError("k must be at least 2 (a neighbourhood needs a second candidate)")
        if self.label_words is not None and self.label_words < 1:
            raise ConfigError(f"label_words must be at least 1 or None, not {self.label_words}")

    def low(self, similarity: float) -> float:
        """The lowest cosine of a neighbour of a deciding candidate at ``similarity``."""
        return max(self.floor, similarity - self.margin)

    def short(self, text: str) -> bool:
        """Whether an answer is short enough to be compared as a label."""
        return self.label_words is None or len(text.split()) <= self.label_words

    def compared(
        self, first: str, second: str, same: Callable[[], bool] | None = None
    ) -> bool | None:
        """What two neighbours' answer texts say: True (agree), False (conflict), None (no
        evidence). Equal texts after normalising agree; two short ones are otherwise compared
        by ``same`` (default: they differ); a long one that differs says nothing."""
        if normalized_match(first, second):
            return True
        if not (self.short(first) and self.short(second)):
            return None
        return bool(same()) if same is not None else False

    def region(self, similarity: float, neighbours: Iterable[tuple[float, bool | None]]) -> Region:
        """The region of a deciding candidate at ``similarity``, given the other candidates as
        ``(cosine with the query, same answer as the deciding candidate?)``; a neighbour whose
        answer says nothing (None) is passed over."""
        low = self.low(similarity)
        agreeing = 1
        for cosine, same in neighbours:
            if cosine < low or same is None:
                continue
            if not same:
                return Region.CONFLICT
            agreeing += 1
        return Region.CONSISTENT if agreeing >= self.min_agree else Region.ALONE

    def serves(self, region: Region, similarity: float, policy_hit: bool) -> bool:
        """Whether the candidate is served, given the policy's own answer ``policy_hit``."""
        if region is Region.CONFLICT:
            return policy_hit and similarity >= self.conflict_bar
        if region is Region.CONSISTENT and self.agree_bar is not None:
            return policy_hit or similarity >= self.agree_bar
        return policy_hit

    def __repr__(self) -> str:
        return (
            f"NeighbourhoodAgreement(margin={self.margin}, floor={self.floor}, "
            f"min_agree={self.min_agree}, agree_bar={self.agree_bar}, "
            f"conflict_bar={self.conflict_bar}, k={self.k}, label_words={self.label_words})"
        )
