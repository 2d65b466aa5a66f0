"""``thrifty batch run`` killed with SIGKILL mid-run, then ``--resume``: nothing lost, nothing
answered twice (counted at RateLimitedFakeOpenAI, a FAKE upstream)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from thrifty.testing.fake_limited import RateLimitedFakeOpenAI

CLI = [sys.executable, "-c", "from thrifty.cli import main; main()"]


def write_job(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}]}
            line = {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions"}
            fh.write(json.dumps({**line, "body": body}) + "\n")


def write_config(path: Path, base_url: str, cache_db: Path) -> None:
    path.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        f"    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{base_url}', api_key: k}}\n"
        f"cache: {{url: 'sqlite:///{cache_db}'}}\n"
    )


def batch_cmd(tmp_path: Path, *extra: str) -> list[str]:
    return [
        *CLI, "batch", "run", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"),
        "--config", str(tmp_path / "config.yaml"), "--max-concurrency", "4", "--no-progress",
        "--json", *extra,
    ]  # fmt: skip


def test_cli_runs_a_job_and_writes_openai_output(tmp_path: Path) -> None:
    with RateLimitedFakeOpenAI() as fake:
        write_job(tmp_path / "in.jsonl", 5)
        write_config(tmp_path / "config.yaml", fake.base_url, tmp_path / "cache.db")
        fake.fail("q3", [400])
        done = subprocess.run(batch_cmd(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # a failed line fails the work
    summary = json.loads(done.stdout)
    assert summary["ok"] == 4 and summary["failed"] == 1
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    errors = [json.loads(x) for x in (tmp_path / "out.errors.jsonl").read_text().splitlines()]
    assert [o["custom_id"] for o in out] == ["r0", "r1", "r2", "r4"]
    assert [e["custom_id"] for e in errors] == ["r3"]


def test_cli_reports_bad_lines_with_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"custom_id": "a"}\nnot json\n')
    (tmp_path / "config.yaml").write_text("model_list: []\n")
    done = subprocess.run(batch_cmd(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "line 1: missing field(s): method, url, body" in done.stderr
    assert "line 2: not valid JSON" in done.stderr


@pytest.mark.parametrize("kill_after", [6, 17])
def test_kill_9_then_resume_loses_nothing_and_pays_once(tmp_path: Path, kill_after: int) -> None:
    n = 40
    # Latency 0.8 s and 4 in flight: answers arrive in waves, and the kill lands mid-wave, so
    # the only requests cut off are ones whose answers were never sent (the fake cancels them).
    with RateLimitedFakeOpenAI(latency=0.8) as fake:
        write_job(tmp_path / "in.jsonl", n)
        write_config(tmp_path / "config.yaml", fake.base_url, tmp_path / "cache.db")
        proc = subprocess.Popen(batch_cmd(tmp_path), stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while fake.admitted < kill_after and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        answered_before = sum(fake.answered_by_prompt.values())
        assert 0 < answered_before < n
        done = subprocess.run(
            batch_cmd(tmp_path, "--resume"), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["skipped"] + summary["cached"] == answered_before
        assert summary["ok"] + summary["skipped"] == n
        assert summary["interrupted"] == 4  # in flight at the kill: reported, sent again
        answered = dict(fake.answered_by_prompt)
    assert answered == {f"q{i}": 1 for i in range(n)}
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [o["custom_id"] for o in out] == [f"r{i}" for i in range(n)]


@pytest.mark.slow
def test_without_config_the_embedded_local_model_answers(tmp_path: Path) -> None:
    lines = []
    for i, prompt in enumerate(["Say hi.", "Say hi.", "Name a colour."]):
        body = {"model": "gpt-4o-mini", "max_tokens": 8, "temperature": 0,
                "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
        lines.append({"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                      "body": body})  # fmt: skip
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    cmd = [
        *CLI, "batch", "run", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"),
        "--cache", f"sqlite:///{tmp_path / 'cache.db'}", "--no-progress", "--json",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "THRIFTY_CONFIG"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] == 3 and summary["upstream_calls"] == 2 and summary["deduplicated"] == 1
    assert summary["cost_usd"] == 0.0  # the local model is free, whatever the line's model
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    texts = [o["response"]["body"]["choices"][0]["message"]["content"] for o in out]
    assert all(texts) and texts[0] == texts[1]


def test_cli_lines_get_ledger_rows_like_the_gateways(tmp_path: Path) -> None:
    """`thrifty batch run` writes a ledger row per line answered in the run, beside its cache as
    the gateway does: a failed line has none, a repeated line is a coalesced one, and a second
    run adds exact hits that cost nothing for the lines the first one answered."""
    from thrifty.ledger import open_ledger

    with RateLimitedFakeOpenAI() as fake:
        write_job(tmp_path / "in.jsonl", 4)
        with (tmp_path / "in.jsonl").open("a") as fh:  # r4 repeats r0's request
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "q0"}]}
            fh.write(json.dumps({"custom_id": "r4", "method": "POST",
                                 "url": "/v1/chat/completions", "body": body}) + "\n")  # fmt: skip
        write_config(tmp_path / "config.yaml", fake.base_url, tmp_path / "cache.db")
        fake.fail("q3", [400])
        first = subprocess.run(batch_cmd(tmp_path), capture_output=True, text=True, timeout=120)
        assert first.returncode == 1, first.stderr
        ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
        rows = {r.request_id: r for r in ledger.rows()}
        assert sorted(rows) == ["in-r0", "in-r1", "in-r2", "in-r4"]  # r3 failed: no row
        assert sorted(r.mechanism for r in rows.values()) == ["coalesced", "miss", "miss", "miss"]
        assert all(r.tenant == "default" and r.model for r in rows.values())
        assert sum(r.cost_usd for r in rows.values()) > 0
        ledger.close()
        (tmp_path / "out.jsonl").unlink()
        second = subprocess.run(
            [*batch_cmd(tmp_path), "--journal", str(tmp_path / "j2.jsonl")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert second.returncode == 0, second.stderr  # the fake fails q3 once only
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    again = [r for r in ledger.rows() if r.mechanism == "exact_hit"]
    ledger.close()
    assert len(again) >= 3 and all(r.cost_usd == 0 for r in again)
