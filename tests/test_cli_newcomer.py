"""What a newcomer meets first: --version, a clear startup, errors that say what was meant."""

from __future__ import annotations

import importlib.metadata
import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thrifty.cli import app
from thrifty.cli._serve_start import banner_lines, port_problem
from thrifty.errors import ConfigError, UnknownSchemeError
from thrifty.server.config import default_config, parse_config
from thrifty.server.pricing import priced_locally
from thrifty.store import open_store

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"thrifty {importlib.metadata.version('thrifty')}"


def test_a_port_in_use_is_a_usage_error_with_a_hint(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert port_problem("127.0.0.1", port) == (
            f"port {port} on 127.0.0.1 is in use; choose another with --port"
        )
        result = runner.invoke(app, ["serve", "--port", str(port)], env={"THRIFTY_CONFIG": ""})
    assert result.exit_code == 2  # documented: bad usage or configuration (uvicorn exits 3)
    assert "in use" in result.output
    assert port_problem("127.0.0.1", 0) is None


def test_the_banner_says_what_is_served_where_and_hides_passwords() -> None:
    lines = banner_lines(default_config(), "127.0.0.1", 8080, 1)
    text = "\n".join(lines)
    assert "http://127.0.0.1:8080/v1" in text
    assert "local, smollm2, local-embed" in text
    assert "any other name: thrifty/local" in text
    assert "sqlite:///.thrifty/cache.db (exact)" in text
    assert "http://127.0.0.1:8080/metrics" in text
    config = parse_config(
        {
            "model_list": [{"model_name": "m", "litellm_params": {"model": "openai/x"}}],
            "cache": {"url": "redis://:hunter2@127.0.0.1:6379/0", "semantic": True},
        }
    )
    text = "\n".join(banner_lines(config, "::1", 9000, 2))
    assert "hunter2" not in text
    assert "http://[::1]:9000/v1 (2 workers)" in text
    assert "exact + semantic" in text


@pytest.mark.parametrize(
    ("url", "meant"),
    [
        ("sqlite:/tmp/x.db", "sqlite:////tmp/x.db"),
        ("sqlite:x.db", "sqlite:///x.db"),
        ("redis:localhost:6379", "redis://localhost:6379"),
    ],
)
def test_a_url_without_slashes_suggests_the_right_one(url: str, meant: str) -> None:
    with pytest.raises(UnknownSchemeError, match=f"did you mean {meant!r}"):
        open_store(url)
    with pytest.raises(UnknownSchemeError) as caught:
        open_store("ftp://x")
    assert "did you mean" not in str(caught.value)


def test_a_misspelled_config_key_names_the_right_one(tmp_path: Path) -> None:
    cases = {
        "cache:\n  ttll: 5\n": "cache.ttll: unknown key; did you mean 'ttl'?",
        "model_lst: []\n": "model_lst: unknown key; did you mean 'model_list'?",
        "router_settings: {}\ncache: {semantik: true}\n": "did you mean 'semantic'",
        "cache: {zzzz: 1}\n": "cache.zzzz: unknown key\n",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        result = runner.invoke(app, ["serve", "--config", str(path)])
        assert result.exit_code == 2, text
        assert f"{path}: " in result.output
        assert message.strip() in " ".join(result.output.split()), result.output


def test_batch_run_names_a_broken_config_file(tmp_path: Path) -> None:
    job = tmp_path / "in.jsonl"
    job.write_text(
        '{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", '
        '"body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}\n'
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_list: [\n")
    args = ["batch", "run", str(job), "-o", str(tmp_path / "out.jsonl"), "--config", str(broken)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert f"{broken}: not valid YAML at line 2, column 1" in output


def test_price_model_prices_the_local_models_answers() -> None:
    from thrifty.server.pricing import Pricer

    config = priced_locally(default_config(), "gpt-4o-mini")
    pricer = Pricer(config)
    for name in ("local", "smollm2", "*"):
        model = pricer.priced_model(name, {"model": "gpt-4o-mini-unknown-echo"})
        assert pricer.cost(model, 1_000_000, 0) == pytest.approx(0.15)  # gpt-4o-mini input
    assert Pricer(default_config()).cost("thrifty/local", 1_000_000, 0) == 0.0
    with pytest.raises(ConfigError, match="no price known for 'nope'"):
        priced_locally(default_config(), "nope")
    result = runner.invoke(app, ["serve", "--price-model", "nope"], env={"THRIFTY_CONFIG": ""})
    assert result.exit_code == 2


@pytest.mark.slow
def test_batch_without_config_labels_answers_by_the_model_that_gave_them(tmp_path: Path) -> None:
    job = tmp_path / "in.jsonl"
    body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
    job.write_text(
        '{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", '
        f'"body": {body}"max_tokens": 3, "temperature": 0}}}}\n'
    )
    out = tmp_path / "out.jsonl"
    args = ["batch", "run", str(job), "-o", str(out), "--cache", "memory://", "--json"]
    result = runner.invoke(app, [*args, "--price-model", "gpt-4o-mini", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "lines for gpt-4o-mini are answered by the embedded local model" in " ".join(
        result.output.split()
    )
    line = json.loads(out.read_text().splitlines()[0])
    assert line["response"]["body"]["model"] == "local"
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["cost_usd"] > 0


def test_a_bare_yaml_off_means_off() -> None:
    import yaml

    config = parse_config(yaml.safe_load("cache: {pii: off}"))
    assert config.cache.pii == "off"


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/c.db"])
def test_a_fresh_demo_run_starts_its_counters_at_zero(url: str, tmp_path: Path) -> None:
    from thrifty.cache import Cache
    from thrifty.cli.demo import reset_counters

    cache = Cache(url.format(tmp=tmp_path), namespace="demo")
    cache.store.add_counters("demo", {"hits": 5, "misses": 3, "saved_usd": 0.25})
    cache.store.add_counters("other", {"hits": 7})
    reset_counters(cache.store, "demo")
    assert not any(cache.store.read_counters("demo").values())
    assert cache.store.read_counters("other")["hits"] == 7
    cache.close()
