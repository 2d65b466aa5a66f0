"""Routing rules and features: length, keywords, code, tools, response_format; first match wins."""

from __future__ import annotations

import pytest

from thrifty.errors import ConfigError
from thrifty.routing.features import features_of, looks_like_code, prompt_text
from thrifty.routing.route import RouteModel
from thrifty.routing.rules import Condition, Rule, first_match


def chat(text: str, **extra: object) -> dict[str, object]:
    return {"model": "thrifty/auto", "messages": [{"role": "user", "content": text}], **extra}


RULES = [
    Rule("strong", Condition(min_prompt_tokens=200)),
    Rule("strong", Condition(keywords=("prove", "step by step"))),
    Rule("strong", Condition(code=True)),
    Rule("strong", Condition(tools=True)),
    Rule("strong", Condition(response_format="json_schema")),
    Rule("cheap", Condition(max_prompt_tokens=30)),
]


@pytest.mark.parametrize(
    ("body", "to", "reason"),
    [
        (chat("word " * 300), "strong", "rule tokens>=200"),
        (chat("Please PROVE that the sum of two even numbers is even."), "strong", "rule keyword"),
        (
            chat(
                "Explain it step by step, in a paragraph or two, for a beginner who is curious "
                "about how interest rates are set by central banks in most countries."
            ),
            "strong",
            "rule keyword",
        ),
        (chat("Why does this fail?\n```python\nprint(1/0)\n```"), "strong", "rule code"),
        (
            chat("What is the weather?", tools=[{"type": "function", "function": {"name": "w"}}]),
            "strong",
            "rule tools",
        ),
        (
            chat("Extract the name.", response_format={"type": "json_schema", "json_schema": {}}),
            "strong",
            "rule json_schema",
        ),
        (chat("Hi there!"), "cheap", "rule tokens<=30"),
    ],
)
def test_first_matching_rule_decides(body: dict[str, object], to: str, reason: str) -> None:
    match = first_match(RULES, features_of(body))
    assert match is not None
    assert (match.to, match.reason) == (to, reason)


def test_no_rule_matches_a_plain_mid_length_prompt() -> None:
    body = chat(
        "I would like to know how the improvement of my savings account works, "
        "and what the bank does with the money I keep in it over the years to come."
    )
    assert first_match(RULES, features_of(body)) is None  # "improvement" is not "prove"


def test_conditions_combine_with_and() -> None:
    rule = Rule("strong", Condition(keywords="refund", max_prompt_tokens=20))
    assert first_match([rule], features_of(chat("refund please"))) is not None
    assert first_match([rule], features_of(chat("refund " + "x " * 50))) is None


def test_code_detection() -> None:
    assert looks_like_code("def f(x):\n    return x")
    assert looks_like_code("int main() {\n  return 0;\n}")
    assert looks_like_code("run `ls`:\n$ ls -la")
    assert not looks_like_code("How do I open a bank account? I live in Paris.")


def test_prompt_text_is_the_last_user_message_or_the_prompt() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "first"}]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second"},
        ]
    }
    assert prompt_text(body) == "second"
    assert prompt_text({"prompt": "complete me"}) == "complete me"


def test_bad_conditions_are_refused() -> None:
    with pytest.raises(ValueError, match="response_format"):
        Condition(response_format="yaml")
    with pytest.raises(ValueError, match="min_prompt_tokens"):
        Condition(min_prompt_tokens=-1)


def test_route_model_checks_its_rules_and_default_against_the_chain() -> None:
    with pytest.raises(ConfigError, match=r"rules\[0\]\.to 'other'"):
        RouteModel("auto", ["cheap", "strong"], rules=[Rule("other")])
    with pytest.raises(ConfigError, match="two or more"):
        RouteModel("auto", ["cheap"])
    with pytest.raises(ConfigError, match="unknown cascade"):
        RouteModel("auto", ["cheap", "strong"], cascade_on=["nonsense"])


def test_route_model_without_router_uses_rules_then_default() -> None:
    route = RouteModel("thrifty/auto", ["cheap", "strong"], rules=RULES[:3])
    decision = route.decide(chat("Prove it."))
    assert (decision.model, decision.by) == ("strong", "rule")
    plain = route.decide(chat("What are your opening hours?"))
    assert (plain.model, plain.by, plain.index) == ("cheap", "default", 0)
    assert route.describe(plain, [("strong", "empty")]) == (
        "thrifty/auto -> cheap (default) -> strong (cascade: empty)"
    )
