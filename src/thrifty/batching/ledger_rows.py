"""A batch line's ledger row: one rule for the gateway's batches and ``thrifty batch run``.

A line answered in this run is a request like any other: it gets a row with its mechanism
(an upstream answer, a cache hit, a duplicate of an earlier line of the job; an upstream answer
billed at Batch API rates is ``batch_discount``), tokens, cost and what it would have cost.
A failed line, or one done in an earlier run of the job, has none.
"""

from __future__ import annotations

from thrifty.batching.engine import Outcome
from thrifty.ledger import LedgerRow, Mechanism

#: The ledger mechanism of a line by where its answer came from (``Outcome.source``).
BATCH_MECHANISMS = {
    "upstream": Mechanism.MISS,
    "cache": Mechanism.EXACT_HIT,
    "deduplicated": Mechanism.COALESCED,
}


def line_mechanism(outcome: Outcome) -> Mechanism | None:
    """The mechanism of a line answered in this run (None: failed, or done earlier)."""
    mechanism = BATCH_MECHANISMS.get(outcome.source)
    if not outcome.ok or mechanism is None:
        return None
    if mechanism == Mechanism.MISS and outcome.discount_usd > 0:
        return Mechanism.BATCH_DISCOUNT
    return mechanism


def line_row(
    outcome: Outcome, *, request_id: str, tenant: str, key_id: str = ""
) -> LedgerRow | None:
    """The ledger row of one line (None when it has none)."""
    mechanism = line_mechanism(outcome)
    if mechanism is None:
        return None
    return LedgerRow(
        request_id=request_id,
        tenant=tenant,
        mechanism=str(mechanism),
        model=outcome.model,
        key_id=key_id,
        tokens_in=outcome.tokens_in,
        tokens_out=outcome.tokens_out,
        cost_usd=outcome.cost_usd,
        baseline_cost_usd=outcome.cost_usd + outcome.saved_usd,
        latency_ms=outcome.latency_ms,
    )
