"""The semantic switches of :class:`thrifty.Cache`, apart from its hot path.

Each is a thin forward to the semantic layer (``semantic.py``) that is a no-op, or answers
"nothing", when the cache is not semantic; kept here so the facade stays about lookups and
writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Unpack

if TYPE_CHECKING:
    from thrifty.cache.semantic import FeedbackOptions, SemanticLayer


class SemanticControls:
    """Mixed into :class:`~thrifty.cache.Cache`, which sets ``_semantic``."""

    _semantic: SemanticLayer | None

    def set_semantic(self, namespace: str, enabled: bool) -> None:
        """Turn semantic matching on or off for a namespace, or a whole tenant (``tenant``
        covers ``tenant/…``). Off: lookups are exact only and new entries are not indexed.
        Nothing to do when the cache is not semantic."""
        if self._semantic is not None:
            self._semantic.set_enabled(namespace, enabled)

    def set_semantic_policy(self, namespace: str, policy: Any) -> None:
        """A namespace's (or tenant's) own :class:`~thrifty.semantic.ThresholdPolicy`."""
        if self._semantic is not None:
            self._semantic.set_policy(namespace, policy)

    def set_semantic_agreement(self, namespace: str, agreement: Any) -> None:
        """A namespace's (or tenant's) own neighbourhood agreement: True for the default rule,
        False / None for none, or a :class:`~thrifty.semantic.agreement.NeighbourhoodAgreement`.

        Raises:
            ConfigError: anything else.
        """
        if self._semantic is not None:
            from thrifty.cache.settings import agreement_of

            self._semantic.set_agreement(namespace, agreement_of(agreement))

    def semantic_decision(self, key: str) -> tuple[str, float | None] | None:
        """What the last semantic lookup of ``key`` decided, at which similarity (read once)."""
        return None if self._semantic is None else self._semantic.decision(key)

    def semantic_enabled(self, namespace: str) -> bool:
        """True when semantic matching applies to ``namespace``."""
        return self._semantic is not None and self._semantic.enabled(namespace)

    def feedback(self, ident: str, correct: bool, **options: Unpack[FeedbackOptions]) -> bool:
        """Tell the threshold policy whether a semantic hit was right.

        Args:
            ident: the hit's ``id``, the key of the request it answered, or the served entry's
                key (then ``similarity`` should be given).
            options: ``similarity``; ``tenant``: only a hit served in the tenant counts.
        Returns:
            False when the hit is unknown (too old, or not semantic) or semantic is off.
        """
        return self._semantic is not None and self._semantic.feedback(ident, correct, **options)

    async def afeedback(self, ident: str, correct: bool, **kwargs: Any) -> bool:
        """Async :meth:`feedback` (it only updates the policy in memory)."""
        return self.feedback(ident, correct, **kwargs)
