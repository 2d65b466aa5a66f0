"""The cheap model's own signal: final numbers, wrong arithmetic, hedging, log-probs, and the
cascade checks built on them (asked for by name; the defaults stay the format checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _gateway import gateway
from thrifty.errors import ConfigError
from thrifty.routing.answer_signals import (
    ANSWER_FEATURES,
    answer_features,
    arithmetic_errors,
    final_number,
    hedges,
    marked,
    mean_logprob,
)
from thrifty.routing.route import RouteModel
from thrifty.routing.validation import DEFAULT_CHECKS, CheckOptions, failed_check
from thrifty.server.config import parse_config

GOOD = "She has 16 - 3 = 13 eggs, then 13 - 4 = 9.\nShe sells 9 * $2 = $<<9*2=18>>18.\n#### 18"
WRONG = "She has 16 - 3 = 12 eggs.\nShe sells 12 * 2 = <<12*2=26>>26.\n#### 26"
HEDGED = "Assuming the eggs are sold, however, it's unclear. Approximately 18.5 dollars."


def chat(text: str, logprobs: list[float] | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"message": {"role": "assistant", "content": text}}
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": "x", "logprob": v} for v in logprobs]}
    return {"choices": [choice]}


def test_final_number() -> None:
    assert final_number(GOOD) == 18.0
    assert final_number("The answer is 1,234.") == 1234.0
    assert final_number("so it costs $7.50 in all") == 7.5
    assert final_number("I do not know.") is None
    assert marked(GOOD) and marked("The answer is 4") and not marked("it is 4 apples")


def test_arithmetic_is_recomputed_not_evaluated() -> None:
    assert arithmetic_errors(GOOD) == (3, 0)
    checked, wrong = arithmetic_errors(WRONG)
    assert checked == 2 and wrong == 2
    assert arithmetic_errors("__import__('os') = 3") == (0, 0)
    assert arithmetic_errors("1/0 = 5") == (0, 0)


def test_hedges_logprobs_and_features() -> None:
    assert hedges(HEDGED) >= 3 and hedges(GOOD) == 0
    assert mean_logprob(chat("x", [-0.1, -0.3])) == pytest.approx(-0.2)
    assert mean_logprob(chat("x")) is None
    assert mean_logprob({"choices": [{"text": "x", "logprobs": {"token_logprobs": [-1.0]}}]}) == -1
    f = answer_features(WRONG)
    assert len(f) == len(ANSWER_FEATURES)
    assert f[ANSWER_FEATURES.index("wrong")] > 0 and answer_features(GOOD)[3] == 0


def test_cascade_checks_by_name() -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "How much?"}]}
    numbers = ("no_number", "unmarked", "arithmetic", "hedging")
    assert failed_check(body, chat(GOOD), numbers) is None
    assert failed_check(body, chat(WRONG), numbers) == "arithmetic"
    assert failed_check(body, chat("I don't know"), numbers) == "no_number"
    assert failed_check(body, chat("it is 4 apples"), numbers) == "unmarked"
    assert failed_check(body, chat(HEDGED), ("hedging",)) == "hedging"
    options = CheckOptions(pattern=r"^ANSWER: [A-D]$", min_logprob=-0.5)
    assert failed_check(body, chat("ANSWER: B"), ("regex",), options) is None
    assert failed_check(body, chat("Probably B"), ("regex",), options) == "regex"
    confident, unsure = chat("B", [-0.01, -0.2]), chat("B", [-2.0, -1.5])
    assert failed_check(body, confident, ("low_logprob",), options) is None
    assert failed_check(body, unsure, ("low_logprob",), options) == "low_logprob"
    assert failed_check(body, chat("B"), ("low_logprob",), options) is None  # none returned
    # The defaults judge the format only: a maths answer without a number passes them.
    assert failed_check(body, chat("I don't know"), DEFAULT_CHECKS) is None


def test_route_model_validates_check_options() -> None:
    with pytest.raises(ConfigError, match="needs a pattern"):
        RouteModel("auto", ["a", "b"], cascade_on=["regex"])
    with pytest.raises(ConfigError, match="invalid"):
        RouteModel("auto", ["a", "b"], cascade_on=["regex"], check_options=CheckOptions("("))
    with pytest.raises(ConfigError, match="minimum"):
        RouteModel("auto", ["a", "b"], cascade_on=["low_logprob"])
    route = RouteModel(
        "auto", ["a", "b"], cascade_on=["no_number", "regex"], check_options=CheckOptions("x")
    )
    assert route.cascade_on == ("no_number", "regex")


def test_gateway_config_names_the_new_checks(tmp_path: Path) -> None:
    def config(**route: Any) -> Any:
        return parse_config(
            {
                "model_list": [
                    {"model_name": m, "model": f"openai/{m}", "api_key": "sk-fake"}
                    for m in ("gpt-4o-mini", "gpt-4o")
                ],
                "cache": {"url": "memory://"},
                "routes": [{"name": "auto", "chain": ["gpt-4o-mini", "gpt-4o"], **route}],
            },
            source=str(tmp_path / "gateway.yaml"),
        )

    assert tuple(config().routes[0].cascade_on) == DEFAULT_CHECKS
    settings = config(cascade_on=["no_number", "low_logprob"], cascade_min_logprob=-0.7)
    assert settings.routes[0].cascade_min_logprob == -0.7
    with pytest.raises(ConfigError, match="needs a pattern"), gateway(config(cascade_on=["regex"])):
        pass
