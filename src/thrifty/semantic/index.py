"""``ScopedIndex``: vectors partitioned by scope; exact search for small scopes, HNSW for large.

Why partitions and not one global index filtered after the search: a semantic match must stay
inside its scope (tenant, model, system prompt, earlier turns). With one global index, the top-k
of a common question may all lie in other tenants' scopes, so a post-filter loses the true match
exactly when many tenants ask the same things. A partition per scope filters exactly, by
construction. Most scopes are tiny (every multi-turn conversation has its own history, hence its
own scope), so a partition starts as a contiguous numpy matrix searched exactly — a dot product
over up to ``ann_threshold`` rows takes well under a millisecond — and is promoted to a usearch
HNSW graph when it grows past that. One support bot with a fixed system prompt is one large scope
(1M entries → one usearch graph); a million conversations are a million small matrices.

Persistence (``path`` given): ``manifest.json`` (model, dimensions, sync time), ``rows.json``
(key, scope and text per vector id), ``flat.npy`` (vectors of small partitions) and one ``.usearch``
file per large partition, written to a temporary folder and swapped in. A missing, unreadable or
mismatched folder means a rebuild from the store (``matcher.py`` does that).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.entry import Entry, Selector
from thrifty.semantic.base import Candidate, VectorIndex

log = logging.getLogger("thrifty.semantic.index")
#: Rows at which a scope's exact matrix becomes a usearch HNSW graph.
ANN_THRESHOLD = 4096
FORMAT_VERSION = 2


def usearch_index_class() -> Any:
    """usearch's ``Index``, imported after onnxruntime.

    With usearch 2.26.6 and onnxruntime 1.32 (manylinux wheels), importing onnxruntime *after*
    usearch's extension is loaded crashes the process (segmentation fault); the other order is
    fine. So onnxruntime, when installed, is always loaded first.
    """
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime  # noqa: F401

    from usearch.index import Index

    return Index


@dataclass(slots=True)
class _Row:
    key: str
    scope: str
    text: str
    # The entry's selector fields, so an invalidation or a user purge removes the row (and its
    # text) from the index at once instead of when a lookup next meets it.
    namespace: str | None = None
    user_id: str | None = None
    tags: tuple[str, ...] = ()
    model: str | None = None
    model_version: str | None = None


def _row(key: str, scope: str, text: str, entry: Entry | None) -> _Row:
    if entry is None:
        return _Row(key, scope, text)
    return _Row(key, scope, text, entry.namespace, entry.user_id, tuple(entry.tags),
                entry.model, entry.model_version)  # fmt: skip


class _FlatPartition:
    """A growable matrix of unit vectors, searched exactly."""

    def __init__(self, dim: int) -> None:
        self.ids = np.empty(16, dtype=np.int64)
        self.vectors = np.empty((16, dim), dtype=np.float32)
        self.n = 0
        self.pos: dict[int, int] = {}

    def __len__(self) -> int:
        return self.n

    def add(self, vid: int, vector: np.ndarray) -> None:
        if self.n == len(self.ids):
            self.ids = np.resize(self.ids, self.n * 2)
            grown = np.empty((self.n * 2, self.vectors.shape[1]), dtype=np.float32)
            grown[: self.n] = self.vectors[: self.n]
            self.vectors = grown
        self.ids[self.n] = vid
        self.vectors[self.n] = vector
        self.pos[vid] = self.n
        self.n += 1

    def remove(self, vid: int) -> None:
        row = self.pos.pop(vid)
        last = self.n - 1
        if row != last:  # move the last row into the hole
            moved = int(self.ids[last])
            self.ids[row] = moved
            self.vectors[row] = self.vectors[last]
            self.pos[moved] = row
        self.n = last

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = self.vectors[: self.n] @ vector
        if self.n > k:
            top = np.argpartition(-sims, k - 1)[:k]
            top = top[np.argsort(-sims[top])]
        else:
            top = np.argsort(-sims)
        return self.ids[top], sims[top]

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        return self.ids[: self.n].copy(), self.vectors[: self.n].copy()


class _HNSWPartition:
    """A usearch graph over unit vectors with the inner-product metric."""

    def __init__(
        self, dim: int, dtype: str, connectivity: int, expansion_add: int, index: Any = None
    ) -> None:
        Index = usearch_index_class()
        self.index = index or Index(
            ndim=dim,
            metric="ip",
            dtype=dtype,
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=64,
        )

    def __len__(self) -> int:
        return len(self.index)

    def add(self, vid: int, vector: np.ndarray) -> None:
        self.index.add(vid, vector, threads=1)

    def add_many(self, vids: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add(vids, vectors, threads=0)  # bulk (rebuilds): every core

    def remove(self, vid: int) -> None:
        self.index.remove(vid)

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        matches = self.index.search(vector, k, threads=1)
        return matches.keys.astype(np.int64), 1.0 - matches.distances.astype(np.float32)


class ScopedIndex(VectorIndex):
    """Vectors of entry keys, partitioned by scope (see the module docstring).

    Args:
        dim: vector length.
        model: the embedder's name; a saved index of another model is not loaded.
        path: folder to persist to (None: memory only).
        ann_threshold: rows at which a scope switches from exact search to HNSW.
        dtype: usearch storage type for large scopes (``"f16"``: half the memory of ``"f32"``,
            similarities within ~1e-3, and inserts ~2x faster on this CPU; or ``"i8"``).
        connectivity: HNSW ``M``.
        expansion_add: HNSW ``efConstruction``; 64 instead of usearch's 128 halves insert time
            at the same recall@1 on 20k MiniLM-sized vectors (measured 0.99 both).
    """

    def __init__(
        self,
        dim: int,
        *,
        model: str = "",
        path: str | os.PathLike[str] | None = None,
        ann_threshold: int = ANN_THRESHOLD,
        dtype: str = "f16",
        connectivity: int = 16,
        expansion_add: int = 64,
    ) -> None:
        self.dim = dim
        self.model = model
        self.path = Path(path) if path is not None else None
        self.ann_threshold = ann_threshold
        self.dtype = dtype
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        #: Unix time up to which the store's entries are known to be in the index.
        self.synced_at: float | None = None
        self._lock = threading.RLock()
        self._rows: dict[int, _Row] = {}
        self._ids: dict[str, int] = {}
        self._parts: dict[str, _FlatPartition | _HNSWPartition] = {}
        self._next = 0
        self.dirty = False

    # ------------------------------------------------------------ mutations
    def add(
        self, key: str, scope: str, vector: np.ndarray, text: str = "", entry: Entry | None = None
    ) -> None:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dim:
            raise ValueError(f"vector has {vector.shape[0]} dimensions, index has {self.dim}")
        with self._lock:
            self._remove(key)
            vid = self._next
            self._next += 1
            part = self._parts.get(scope)
            if part is None:
                part = self._parts[scope] = _FlatPartition(self.dim)
            part.add(vid, vector)
            self._rows[vid] = _row(key, scope, text, entry)
            self._ids[key] = vid
            if isinstance(part, _FlatPartition) and len(part) > self.ann_threshold:
                self._parts[scope] = self._promote(part)
            self.dirty = True

    def add_many(
        self,
        keys: list[str],
        scopes: list[str],
        vectors: np.ndarray,
        texts: list[str],
        entries: list[Entry] | None = None,
    ) -> None:
        """Bulk :meth:`add` (a rebuild): large scopes are built with every core at once."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(keys), self.dim)
        with self._lock:
            groups: dict[str, list[int]] = {}
            for row, (key, scope, text) in enumerate(zip(keys, scopes, texts, strict=True)):
                self._remove(key)
                vid = self._next
                self._next += 1
                self._rows[vid] = _row(key, scope, text, entries[row] if entries else None)
                self._ids[key] = vid
                groups.setdefault(scope, []).append(row)
            for scope, rows in groups.items():
                vids = np.asarray([self._ids[keys[r]] for r in rows], dtype=np.int64)
                part = self._parts.get(scope)
                if part is None:
                    part = self._parts[scope] = _FlatPartition(self.dim)
                if isinstance(part, _FlatPartition) and len(part) + len(rows) > self.ann_threshold:
                    part = self._parts[scope] = self._promote(part)
                if isinstance(part, _HNSWPartition):
                    part.add_many(vids, vectors[rows])
                else:
                    for vid, row in zip(vids.tolist(), rows, strict=True):
                        part.add(vid, vectors[row])
            self.dirty = True

    def _promote(self, flat: _FlatPartition) -> _HNSWPartition:
        hnsw = _HNSWPartition(self.dim, self.dtype, self.connectivity, self.expansion_add)
        ids, vectors = flat.items()
        if len(ids):
            hnsw.add_many(ids, vectors)
        return hnsw

    def remove(self, key: str) -> bool:
        with self._lock:
            removed = self._remove(key)
            self.dirty = self.dirty or removed
            return removed

    def _remove(self, key: str) -> bool:
        vid = self._ids.pop(key, None)
        if vid is None:
            return False
        row = self._rows.pop(vid)
        part = self._parts[row.scope]
        part.remove(vid)
        if len(part) == 0:
            del self._parts[row.scope]
        return True

    def remove_matching(self, selector: Selector) -> list[str]:
        """Drop every row whose entry the selector matches; returns their keys."""
        with self._lock:
            doomed = [row.key for row in self._rows.values() if selector.matches(row)]
            for key in doomed:
                self._remove(key)
            self.dirty = self.dirty or bool(doomed)
            return doomed

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._ids.clear()
            self._parts.clear()
            self.synced_at = None
            self.dirty = True

    # --------------------------------------------------------------- search
    def search(self, scope: str, vector: np.ndarray, k: int = 4) -> list[Candidate]:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            part = self._parts.get(scope)
            if part is None:
                return []
            ids, sims = part.search(vector, min(k, len(part)))
            out = []
            for vid, sim in zip(ids.tolist(), sims.tolist(), strict=True):
                row = self._rows.get(vid)
                if row is not None:
                    out.append(Candidate(row.key, float(sim), row.text))
            return out

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def scopes(self) -> dict[str, int]:
        """Rows per scope (for stats and tests)."""
        with self._lock:
            return {scope: len(part) for scope, part in self._parts.items()}

    # ---------------------------------------------------------- persistence
    def save(self) -> None:
        """Write the index to ``path`` atomically (a folder swap); no-op without a path."""
        if self.path is None:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.path.parent))
            try:
                self._write(tmp)
                old = self.path.with_name(self.path.name + f".old-{os.getpid()}")
                if self.path.exists():
                    os.replace(self.path, old)
                os.replace(tmp, self.path)
                shutil.rmtree(old, ignore_errors=True)
                self.dirty = False
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def _write(self, folder: Path) -> None:
        flat_ids: list[np.ndarray] = []
        flat_vecs: list[np.ndarray] = []
        hnsw_files: dict[str, str] = {}
        for n, (scope, part) in enumerate(self._parts.items()):
            if isinstance(part, _FlatPartition):
                ids, vecs = part.items()
                flat_ids.append(ids)
                flat_vecs.append(vecs)
            else:
                name = f"hnsw-{n}.usearch"
                part.index.save(str(folder / name))
                hnsw_files[scope] = name
        ids = np.concatenate(flat_ids) if flat_ids else np.empty(0, dtype=np.int64)
        vecs = np.concatenate(flat_vecs) if flat_vecs else np.empty((0, self.dim), np.float32)
        np.save(folder / "flat_ids.npy", ids)
        np.save(folder / "flat.npy", vecs)
        rows = {
            str(vid): [r.key, r.scope, r.text, r.namespace, r.user_id, list(r.tags), r.model,
                       r.model_version]
            for vid, r in self._rows.items()
        }  # fmt: skip
        (folder / "rows.json").write_text(json.dumps(rows, ensure_ascii=False))
        manifest = {
            "format": FORMAT_VERSION,
            "dim": self.dim,
            "model": self.model,
            "dtype": self.dtype,
            "connectivity": self.connectivity,
            "expansion_add": self.expansion_add,
            "next": self._next,
            "synced_at": self.synced_at,
            "hnsw": hnsw_files,
        }
        (folder / "manifest.json").write_text(json.dumps(manifest))

    def load(self) -> bool:
        """Read the index from ``path``; False (and an empty index) when it is missing,
        unreadable, or saved for another model, dimension or format."""
        if self.path is None or not (self.path / "manifest.json").is_file():
            return False
        try:
            self._read(self.path)
            return True
        except Exception as exc:  # a corrupt index is only a rebuild, never a failure
            log.warning("semantic index at %s is unreadable, rebuilding: %s", self.path, exc)
            self.clear()
            return False

    def _read(self, folder: Path) -> None:
        Index = usearch_index_class()
        manifest = json.loads((folder / "manifest.json").read_text())
        if (manifest["format"], manifest["dim"], manifest["model"]) != (
            FORMAT_VERSION,
            self.dim,
            self.model,
        ):
            raise ValueError(f"saved for {manifest['model']!r}/{manifest['dim']}")
        raw_rows = json.loads((folder / "rows.json").read_text())
        rows = {int(vid): _Row(*[*r[:5], tuple(r[5]), *r[6:]]) for vid, r in raw_rows.items()}
        parts: dict[str, _FlatPartition | _HNSWPartition] = {}
        for scope, name in manifest["hnsw"].items():
            index = Index.restore(str(folder / name))
            if index is None:
                raise ValueError(f"cannot restore {name}")
            parts[scope] = _HNSWPartition(
                self.dim, self.dtype, self.connectivity, self.expansion_add, index
            )
        ids = np.load(folder / "flat_ids.npy")
        vecs = np.load(folder / "flat.npy")
        for vid, vec in zip(ids.tolist(), vecs, strict=True):
            scope = rows[vid].scope
            part = parts.get(scope)
            if part is None:
                part = parts[scope] = _FlatPartition(self.dim)
            part.add(vid, vec)
        with self._lock:
            self._rows = rows
            self._ids = {r.key: vid for vid, r in rows.items()}
            self._parts = parts
            self._next = int(manifest["next"])
            self.synced_at = manifest["synced_at"]
            self.dirty = False
