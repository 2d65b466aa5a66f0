"""PIIGuard: the store decision of each mode, for requests and for answers."""

from __future__ import annotations

from typing import Any

import pytest

from thrifty.errors import ConfigError
from thrifty.safety.pii import PIIDetector, PIIGuard, PIIMode


def chat(user: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": user}]}


def answer(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


PII_REQUEST = chat("Refund to card 4111 1111 1111 1111 please, mail me at ann@example.com")
PII_ANSWER = answer("Done. We will call you on +44 20 7946 0958.")
CLEAN_REQUEST = chat("How do I reset my password?")
CLEAN_ANSWER = answer("Open Settings, then Security.")


def test_off_stores_everything_without_scanning() -> None:
    decision = PIIGuard("off").decide(PII_REQUEST, PII_ANSWER)
    assert decision.store
    assert decision.request is PII_REQUEST and decision.response is PII_ANSWER
    assert decision.found == frozenset()


@pytest.mark.parametrize(
    ("request_", "response", "found"),
    [
        (PII_REQUEST, CLEAN_ANSWER, {"card", "email"}),
        (CLEAN_REQUEST, PII_ANSWER, {"phone"}),
        (PII_REQUEST, PII_ANSWER, {"card", "email", "phone"}),
    ],
)
def test_skip_store_stores_nothing_when_either_side_holds_pii(
    request_: dict, response: dict, found: set[str]
) -> None:
    decision = PIIGuard(PIIMode.SKIP_STORE).decide(request_, response)
    assert not decision.store
    assert decision.found == found


def test_clean_exchanges_are_stored_as_they_are() -> None:
    for mode in ("skip_store", "redact"):
        decision = PIIGuard(mode).decide(CLEAN_REQUEST, CLEAN_ANSWER)
        assert decision.store
        assert decision.request is CLEAN_REQUEST and decision.response is CLEAN_ANSWER


def test_redact_stores_placeholders_and_leaves_the_originals() -> None:
    decision = PIIGuard("redact").decide(PII_REQUEST, PII_ANSWER)
    assert decision.store
    assert decision.request["messages"][0]["content"] == (
        "Refund to card [CARD] please, mail me at [EMAIL]"
    )
    assert decision.response["choices"][0]["message"]["content"] == (
        "Done. We will call you on [PHONE]."
    )
    assert "4111" in PII_REQUEST["messages"][0]["content"]  # the client's copy is untouched
    assert decision.found == {"card", "email", "phone"}


def test_with_mode_shares_the_detector() -> None:
    detector = PIIDetector(types=["email"])
    guard = PIIGuard("redact", detector)
    other = guard.with_mode("skip_store")
    assert other.detector is detector and other.mode is PIIMode.SKIP_STORE
    assert other.decide(PII_REQUEST, CLEAN_ANSWER).found == {"email"}


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown pii mode 'encrypt'"):
        PIIGuard("encrypt")
