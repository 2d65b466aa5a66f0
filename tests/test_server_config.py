"""The YAML config (LiteLLM's shape) and ``thrifty serve`` refusing a bad one with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from thrifty.cli import app as cli
from thrifty.errors import ConfigError
from thrifty.server.app import create_app
from thrifty.server.config import default_config, load_config, parse_config

LITELLM_CONFIG = """
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/TEST_OPENAI_KEY
      rpm: 500
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:8000/v1
      api_key: sk-second
  - model_name: local
    model: thrifty/local
router_settings:
  num_retries: 3
  timeout: 30
  fallbacks: [{gpt-4o-mini: [local]}]
  allowed_fails: 2
  cooldown_time: 10
  routing_strategy: least-busy
cache: {url: "memory://", ttl: 3600, namespace: support}
keys:
  - {key: os.environ/TEST_TEAM_KEY, tenant: team-a, rpm: 60, tpm: 100000, max_budget_usd: 5}
admin_key: sk-admin
prices:
  gpt-4o-mini: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
litellm_settings: {drop_params: true}
"""
ENV = {"TEST_OPENAI_KEY": "sk-from-env", "TEST_TEAM_KEY": "sk-team"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thrifty.yaml"
    path.write_text(text)
    return path


def test_litellm_shaped_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, LITELLM_CONFIG), env=ENV)
    assert config.model_names() == ["gpt-4o-mini", "local"]
    assert config.model_list[0].litellm_params.api_key == "sk-from-env"
    assert config.model_list[0].litellm_params.rpm == 500
    assert config.model_list[2].litellm_params.kind == "local"  # the flat short form
    assert config.keys[0].key == "sk-team" and config.keys[0].max_budget_usd == 5
    assert config.fallbacks_for("gpt-4o-mini") == ["local"]
    assert config.cache.ttl == 3600 and config.master_key == "sk-admin"
    app = create_app(config)
    gateway = app.state.gateway
    assert [d.id for d in gateway.pool.deployments("gpt-4o-mini")] == [
        "gpt-4o-mini#0",
        "gpt-4o-mini#1",
    ]
    assert gateway.pool.strategy == "least-busy"
    assert gateway.prices.get("gpt-4o-mini").input_cost_per_token == 0.000001


def test_config_from_environment_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "model_list: [{model_name: m, litellm_params: {model: openai/x}}]")
    config = load_config(env={"THRIFTY_CONFIG": str(path)})
    assert config.model_names() == ["m"]


def test_default_config_serves_the_local_model() -> None:
    config = default_config()
    assert config.model_names() == ["local", "smollm2", "*", "local-embed"]
    assert config.cache.url == "sqlite:///.thrifty/cache.db"
    assert load_config(env={}) == config
    assert {e.litellm_params.kind for e in config.model_list} == {"local"}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("model_list: [{model_name: m}]", "model_list[0].litellm_params"),
        (
            "model_list: [{model_name: m, litellm_params: {api_base: x}}]",
            "model_list[0].litellm_params.model",
        ),
        (
            "model_list: [{model_name: m, litellm_params: {model: openai/x, rpm: lots}}]",
            "model_list[0].litellm_params.rpm",
        ),
        (
            "model_list: [{model_name: m, litellm_params: {model: bedrock/x}}]",
            "model_list[0].litellm_params",
        ),
        (
            "model_list: [{model_name: m, litellm_params: {model: openai/x, "
            "api_key: os.environ/THRIFTY_TEST_UNSET_VAR}}]",
            "model_list[0].litellm_params.api_key",
        ),
        ("router_settings: {num_retries: -1}", "router_settings.num_retries"),
        (
            "model_list: [{model_name: m, model: openai/x}]\n"
            "router_settings: {fallbacks: [{m: [ghost]}]}",
            "router_settings.fallbacks[0]",
        ),
        ("cache: {url: 'memory://', tll: 5}", "cache.tll"),
        ("keys: [{key: k, tenant: 'a/b'}]", "keys[0].tenant"),
        ("keys: [{key: k, tenant: a}, {key: k, tenant: b}]", "keys[1].key"),
        ("modle_list: []", "modle_list"),
        ("- just a list", "top level"),
        ("model_list: [unclosed", "not valid YAML"),
    ],
)
def test_config_errors_name_the_field_and_the_file(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert field in message, message


def test_pool_errors_name_the_file() -> None:
    config = parse_config(
        {
            "model_list": [{"model_name": "m", "model": "openai/x"}],
            "router_settings": {"routing_strategy": "psychic"},
        }
    )
    with pytest.raises(ConfigError, match=r"^cfg\.yaml: .*routing_strategy"):
        create_app(config, source="cfg.yaml")


def test_serve_refuses_a_bad_config_with_exit_code_2(tmp_path: Path) -> None:
    path = write(
        tmp_path, "model_list: [{model_name: m, litellm_params: {model: openai/x, timeout: -3}}]"
    )
    result = CliRunner().invoke(cli, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert str(path) in result.output and "model_list[0].litellm_params.timeout" in result.output
    missing = CliRunner().invoke(cli, ["serve", "--config", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "none.yaml" in missing.output


def test_serve_help_shows_an_example() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    assert "Example: thrifty serve" in result.output
