"""The semantic index on Milvus: one shared index for every replica, from a laptop to a cluster.

Why an engine: the in-process ``ScopedIndex`` keeps a full copy of every vector in each replica
(~2 KB an entry, a long catch-up on start). With ``milvus-lite:///path/index.db`` (embedded
Milvus, from PyPI) or ``milvus://host:19530`` (a Milvus server or cluster, the same ``pymilvus``
client), the vectors live in the engine, replicas hold none, and a vector one replica adds is
searchable by all at once: there is nothing to catch up.

Guarantees kept from ``ScopedIndex``:

- **scope is a hard filter**: every search carries ``scope == "<scope>"`` (the scope is also the
  collection's partition key, so a search reads only its partition); a tenant's vectors can never
  be a candidate for another tenant;
- **invalidation**: an entry's selector fields (namespace, user, tags, model, version) are stored
  with its vector, so ``remove_matching`` deletes by the same selectors as the store, and every
  candidate is re-checked in the store before it is served anyway (an invalidated entry is never
  served, even by a replica that has not seen the delete yet);
- TTL: expired entries are dropped when a lookup meets them (the store re-check) and by the
  store's own expiry; the engine holds no TTL of its own.

What makes a lookup fast (``benchmarks/bench_vector_engine.py``, RESULTS "semantic index on an
engine"): an explicit HNSW index (``M=16``, ``efConstruction=64``, searched at ``ef=128``:
recall@1 0.95-0.99 at 1M vectors where ``ef=64`` gave 0.83-0.86, for +3 ms) rather than
AUTOINDEX, which milvus-lite turns into a brute-force scan when faiss is not installed;
``Bounded`` consistency (``?consistency=Strong`` waits for every write of every replica, ~0.4 s
a search on a Milvus 2.3 server); and, on milvus-lite, a flush after bulk writes and every
``LITE_FLUSH_EVERY`` single ones (``?flush_every=N`` sets it, also for a ``milvus://`` URL
that names a milvus-lite server), because milvus-lite scans its unflushed rows in Python on
every search; a Milvus server indexes them itself. A write is a delete then an insert, not an
upsert: Milvus 2.3's upsert left the rows it wrote out of search results (measured on the
v2.3.5 server; ``get`` still found them).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from thrifty.entry import Entry, Selector
from thrifty.errors import ConfigError, ProviderUnavailableError
from thrifty.semantic.base import Candidate, VectorIndex

log = logging.getLogger("thrifty.semantic.engine_index")
#: URL schemes of the engine index (declared once).
ENGINE_SCHEMES = ("milvus-lite", "milvus", "milvus+https")
DEFAULT_COLLECTION = "thrifty_semantic"
#: VARCHAR widths. Keys and scopes are sha256 hex digests; texts are cut to fit (the guards
#: read the start of a question, and the store keeps the whole of it).
KEY_CHARS, SCOPE_CHARS, FIELD_CHARS, TEXT_CHARS = 128, 128, 512, 8192
MAX_TAGS = 64
#: Rows per insert call when many are added at once (a rebuild).
INSERT_BATCH = 1000
#: HNSW graph degree and build breadth; search breadth (at least the candidates asked for).
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF = 16, 64, 128
CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")
#: milvus-lite searches its unflushed rows by a Python scan: flush after this many single adds.
LITE_FLUSH_EVERY = 512


def is_engine_url(value: object) -> bool:
    """Whether ``value`` (``SemanticSettings.index``) names an engine rather than a folder."""
    return isinstance(value, str) and value.split("://", 1)[0].lower() in ENGINE_SCHEMES


def _quote(value: str) -> str:
    """A string literal of Milvus's filter language (JSON escaping is what it reads)."""
    return json.dumps(value)


class MilvusIndex(VectorIndex):
    """:class:`VectorIndex` on a Milvus collection (cosine as inner product of unit vectors).

    Args:
        url: ``milvus-lite:///relative/index.db``, ``milvus-lite:////abs/index.db``,
            ``milvus://host:19530`` or ``milvus+https://host`` (``?collection=NAME&token=…``).
        dim: vector width (the embedder's).
        model: the embedder's name; a collection made for another model or width is refused
            (its vectors would be meaningless to this one).

    Raises:
        ProviderUnavailableError: pymilvus (or milvus-lite for a local file) is not installed.
        ConfigError: a malformed URL, or a collection made for another embedder.
    """

    #: The engine is shared by every replica: nothing to rebuild or catch up from the store.
    shared = True
    path = None

    def __init__(self, url: str, dim: int, *, model: str = "") -> None:
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:
            raise ProviderUnavailableError(
                "the Milvus index needs pymilvus (and milvus-lite for a local file): "
                "pip install 'thrifty[milvus]'"
            ) from exc
        self.dim = dim
        self.model = model
        self.url = url
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.collection = query.pop("collection", DEFAULT_COLLECTION)
        self.consistency = query.get("consistency", "Bounded")
        if self.consistency not in CONSISTENCY_LEVELS:
            raise ConfigError(f"{url!r}: consistency is one of {', '.join(CONSISTENCY_LEVELS)}")
        scheme = parts.scheme.lower()
        self.embedded = scheme == "milvus-lite"
        try:
            self.flush_every = int(
                query.get("flush_every", LITE_FLUSH_EVERY if self.embedded else 0)
            )
        except ValueError:
            raise ConfigError(f"{url!r}: flush_every is a number of writes") from None
        self._unflushed = 0
        if scheme == "milvus-lite":
            target = url.split("://", 1)[1].split("?", 1)[0]
            if not target.startswith("/") or target == "/":
                raise ConfigError(f"{url!r}: write milvus-lite:///relative.db or :////abs.db")
            uri = target[1:]
        elif scheme in ("milvus", "milvus+https"):
            http = "https" if scheme.endswith("https") else "http"
            uri = f"{http}://{parts.hostname}:{parts.port or 19530}"
        else:
            raise ConfigError(f"{url!r}: not a Milvus URL ({', '.join(ENGINE_SCHEMES)})")
        self._client = MilvusClient(uri, token=query.get("token", ""))
        self._lock = threading.Lock()  # milvus-lite's client is not safe from two threads
        self.synced_at: float | None = None
        self.dirty = False
        self._ensure_collection()

    # ------------------------------------------------------------ schema
    def _ensure_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        client, name = self._client, self.collection
        identity = {"thrifty.model": self.model, "thrifty.dim": str(self.dim)}
        if client.has_collection(name):
            found = client.describe_collection(name).get("properties") or {}
            if {k: found.get(k) for k in identity} != identity:
                made_for = ", ".join(f"{k}={found.get(k)}" for k in identity)
                raise ConfigError(
                    f"the Milvus collection {name!r} was made for another index ({made_for}), "
                    f"not for {self.model} ({self.dim} dimensions): use ?collection=another"
                )
            client.load_collection(name)
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("key", DataType.VARCHAR, max_length=KEY_CHARS, is_primary=True)
        schema.add_field("scope", DataType.VARCHAR, max_length=SCOPE_CHARS, is_partition_key=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("text", DataType.VARCHAR, max_length=TEXT_CHARS)
        for field in ("namespace", "user_id", "model", "model_version"):
            schema.add_field(field, DataType.VARCHAR, max_length=FIELD_CHARS)
        schema.add_field(
            "tags",
            DataType.ARRAY,
            element_type=DataType.VARCHAR,
            max_capacity=MAX_TAGS,
            max_length=FIELD_CHARS,
        )
        hnsw = not (self.embedded and importlib.util.find_spec("faiss") is None)
        try:
            self._create(schema, identity, hnsw)
        except Exception as exc:
            if "exist" in str(exc).lower() and client.has_collection(name):
                self._ensure_collection()  # another replica made it at the same moment
                return
            if not hnsw:
                raise
            # a milvus-lite server without faiss has no HNSW: its brute-force scan, then
            log.warning("the engine refused an HNSW index (%s): using AUTOINDEX", exc)
            if client.has_collection(name):
                client.drop_collection(name)
            self._create(schema, identity, False)

    def _create(self, schema: Any, identity: dict[str, str], hnsw: bool) -> None:
        index = self._client.prepare_index_params()
        if hnsw:
            params = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}
            index.add_index("vector", index_type="HNSW", metric_type="IP", params=params)
        else:  # milvus-lite builds HNSW with faiss; without it only a brute-force scan exists
            index.add_index("vector", index_type="AUTOINDEX", metric_type="IP")
        self._client.create_collection(
            self.collection,
            schema=schema,
            index_params=index,
            properties=identity,
            consistency_level=self.consistency,
        )

    @staticmethod
    def _row(key: str, scope: str, vector: np.ndarray, text: str, entry: Entry | None) -> dict:
        return {
            "key": key,
            "scope": scope,
            "vector": np.asarray(vector, dtype=np.float32).tolist(),
            "text": text[: TEXT_CHARS // 4],  # UTF-8: at most 4 bytes a character
            "namespace": (entry.namespace if entry else None) or "",
            "user_id": (entry.user_id if entry else None) or "",
            "model": (entry.model if entry else None) or "",
            "model_version": (entry.model_version if entry else None) or "",
            "tags": list(entry.tags)[:MAX_TAGS] if entry else [],
        }

    # ------------------------------------------------------------ writes
    def add(
        self, key: str, scope: str, vector: np.ndarray, text: str = "", entry: Entry | None = None
    ) -> None:
        with self._lock:
            self._client.delete(self.collection, ids=[key])
            self._client.insert(self.collection, [self._row(key, scope, vector, text, entry)])
            self._unflushed += 1
            if self.flush_every and self._unflushed >= self.flush_every:
                self._flush()

    def add_many(
        self,
        keys: Sequence[str],
        scopes: Sequence[str],
        vectors: np.ndarray,
        texts: Sequence[str],
        entries: Sequence[Entry | None] | None = None,
    ) -> None:
        rows = [
            self._row(k, s, v, t, entries[i] if entries else None)
            for i, (k, s, v, t) in enumerate(zip(keys, scopes, vectors, texts, strict=True))
        ]
        with self._lock:
            for start in range(0, len(rows), INSERT_BATCH):
                batch = rows[start : start + INSERT_BATCH]
                self._client.delete(self.collection, ids=[row["key"] for row in batch])
                self._client.insert(self.collection, batch)
            if self.flush_every:
                self._flush()

    def _flush(self) -> None:
        """Seal milvus-lite's written rows into an indexed segment (lock held)."""
        self._client.flush(self.collection)
        self._unflushed = 0

    def remove(self, key: str) -> bool:
        with self._lock:
            found = self._client.get(self.collection, ids=[key], output_fields=["key"])
            if found:
                self._client.delete(self.collection, ids=[key])
        return bool(found)

    def remove_matching(self, selector: Selector) -> list[str]:
        if selector.is_empty():
            return []
        terms = [
            f"{field} == {_quote(value)}"
            for field, value in (
                ("namespace", selector.namespace),
                ("user_id", selector.user_id),
                ("model", selector.model),
                ("model_version", selector.model_version),
            )
            if value is not None
        ]
        if selector.tag is not None:
            terms.append(f"ARRAY_CONTAINS(tags, {_quote(selector.tag)})")
        expression = " and ".join(terms)
        with self._lock:
            doomed = [
                str(row["key"])
                for row in self._client.query(
                    self.collection, filter=expression, output_fields=["key"]
                )
            ]
            if doomed:
                self._client.delete(self.collection, ids=doomed)
        return doomed

    def clear(self) -> None:
        with self._lock:
            self._client.drop_collection(self.collection)
            self._ensure_collection()

    def drop(self) -> None:
        """Remove the collection for good (benchmarks and tests clean up with it)."""
        with self._lock:
            self._client.drop_collection(self.collection)

    def wait_indexed(self, timeout: float = 3600.0) -> None:
        """Seal the written rows and wait until the engine has indexed them all (after a bulk
        load: until then a server searches its newest rows by a slower interim index)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flush()
            while not self.embedded and time.monotonic() < deadline:
                info = self._client.describe_index(self.collection, "vector")
                pending = int(info.get("pending_index_rows", 0))
                # (compaction re-indexes merged segments: "pending" can stay above zero)
                if not pending or int(info.get("indexed_rows", 0)) >= int(info["total_rows"]):
                    return
                time.sleep(1.0)

    # ------------------------------------------------------------ reads
    def search(self, scope: str, vector: np.ndarray, k: int = 4) -> list[Candidate]:
        with self._lock:
            (hits,) = self._client.search(
                self.collection,
                data=[np.asarray(vector, dtype=np.float32).tolist()],
                limit=k,
                filter=f"scope == {_quote(scope)}",
                output_fields=["text"],
                search_params={"metric_type": "IP", "params": {"ef": max(HNSW_EF, k)}},
                consistency_level=self.consistency,
            )
        # the primary key is "key" in pymilvus's hit (it names the field), "id" from older servers
        return [
            Candidate(
                str(hit.get("key") or hit.get("id")),
                float(hit["distance"]),
                str(hit["entity"].get("text", "")),
            )
            for hit in hits
        ]

    def __len__(self) -> int:
        with self._lock:
            (row,) = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(row["count(*)"])

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        with self._lock:
            return bool(self._client.get(self.collection, ids=[key], output_fields=["key"]))

    def scopes(self) -> dict[str, int]:
        """Vectors per scope (reads every row's scope: for tests and small indexes)."""
        counts: dict[str, int] = {}
        with self._lock:
            rows = self._client.query(self.collection, filter='key != ""', output_fields=["scope"])
        for row in rows:
            counts[row["scope"]] = counts.get(row["scope"], 0) + 1
        return counts

    # ------------------------------------------------------------ upkeep
    def load(self) -> bool:
        """The engine is the index: always ready, never rebuilt from the store."""
        return True

    def save(self) -> None:
        """Milvus persists its own writes."""

    def close(self) -> None:
        with self._lock:
            self._client.close()


def open_engine_index(url: str, dim: int, *, model: str = "") -> Any:
    """The engine index a URL names (only Milvus today; the same URL from laptop to cluster)."""
    return MilvusIndex(url, dim, model=model)
