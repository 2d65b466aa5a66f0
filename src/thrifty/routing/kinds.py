"""Router kinds by name (strategies as data): what ``--kind`` and a router file's ``kind`` mean."""

from __future__ import annotations

from thrifty.errors import ConfigError
from thrifty.routing.grouped import GroupedScorer
from thrifty.routing.heads import FactorScorer, MLPScorer
from thrifty.routing.scorers import LogisticScorer, NeighbourScorer
from thrifty.routing.stacked import StackedScorer

Scorer = LogisticScorer | NeighbourScorer | MLPScorer | FactorScorer | GroupedScorer | StackedScorer
ScorerClass = (
    type[LogisticScorer]
    | type[NeighbourScorer]
    | type[MLPScorer]
    | type[FactorScorer]
    | type[GroupedScorer]
    | type[StackedScorer]
)

#: Every router kind, by the name a router file stores.
SCORERS: dict[str, ScorerClass] = {
    "logistic": LogisticScorer,
    "knn": NeighbourScorer,
    "mlp": MLPScorer,
    "mf": FactorScorer,
    "grouped": GroupedScorer,
    "stack": StackedScorer,
}


def scorer_class(kind: str) -> ScorerClass:
    """The scorer of ``kind``.

    Raises:
        ConfigError: an unknown kind, naming the known ones.
    """
    if kind not in SCORERS:
        raise ConfigError(f"unknown router kind {kind!r}; use one of: {', '.join(SCORERS)}")
    return SCORERS[kind]
