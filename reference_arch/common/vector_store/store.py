"""The vector store resource: LanceDB embedded under the home (default) or Weaviate.

Records are chunks: the string fields in ``FIELDS`` plus a normalised ``vector``. Writes go
through ``replace_documents`` (atomic per document: a document's new chunks appear and its
stale chunks disappear together) and ``delete_documents``; reads are dense, keyword and hybrid
(keyword + vector) search and counts. A collection records the embedding model and dimension its vectors come from
(LanceDB: the table's schema metadata; Weaviate: the collection's description), so vectors of two
models never mix: opened for another model, it is rebuilt (``rebuild=True``, for the writer of a
derived index) or refused with ``EmbeddingMismatchError``.

LanceDB searches exactly until a table reaches ``ann_min_rows``; then an ANN index
(IVF_HNSW_SQ, or IVF_PQ with refinement) is built and kept up to date by ``optimize``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Optional, Sequence

import dagster as dg

from reference_arch.common.settings import home_path

FIELDS = ("id", "document_id", "source_type", "source", "title", "url", "text", "created_at", "updated_at")
SEARCH_MODES = ("dense", "keyword", "hybrid")


class VectorStoreError(RuntimeError):
    """The store refused an operation for a reason the user can act on."""


class EmbeddingMismatchError(VectorStoreError):
    """The collection holds vectors of another embedding model (or dimension) than the one asked for."""

    def __init__(self, name: str, recorded: "Embedding", wanted: "Embedding"):
        self.name, self.recorded, self.wanted = name, recorded, wanted
        super().__init__(f"collection {name} holds vectors of {recorded.describe()}, not of {wanted.describe()}")


class Embedding(tuple):
    """``(model, dimension)`` a collection's vectors come from; either may be ``None`` when a
    collection made by an older version records nothing."""

    def __new__(cls, model: str | None, dimension: int | None):
        return super().__new__(cls, (model, dimension))

    model = property(lambda self: self[0])
    dimension = property(lambda self: self[1])

    def describe(self) -> str:
        if self.model is None:
            return "an unrecorded embedding model"
        return f"embedding model {self.model}" + (f" ({self.dimension} dimensions)" if self.dimension else "")

    def as_record(self) -> dict[str, str]:
        return {"embedding_model": str(self.model), "embedding_dimension": str(self.dimension)}

    @classmethod
    def from_record(cls, record: dict | None) -> "Embedding":
        record = record or {}
        dimension = record.get("embedding_dimension")
        return cls(record.get("embedding_model") or None, int(dimension) if str(dimension or "").isdigit() else None)


class UnreadableIndexError(VectorStoreError):
    """A LanceDB table's files cannot be read (a truncated data file or manifest). The table is
    derived from the chunks: ``rag/vector_index`` rebuilds it (``LanceCollection.recreate``)."""


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


class VectorStoreResource(dg.ConfigurableResource):
    """Chunk vectors: ``lancedb`` (embedded, default) or ``weaviate`` (``WEAVIATE_URL``)."""

    backend: Optional[str] = None  # "lancedb" | "weaviate"; unset: weaviate when WEAVIATE_URL is set
    uri: Optional[str] = None  # LanceDB directory or object-store URI; default: home/lancedb
    url: Optional[str] = None  # Weaviate HTTP URL; default: WEAVIATE_URL
    api_key: Optional[str] = None  # Weaviate API key (EnvVar("WEAVIATE_API_KEY")), never plain config
    grpc_port: Optional[int] = None  # Weaviate gRPC port; default: WEAVIATE_GRPC_PORT or 50051
    ann_min_rows: int = 20_000  # below this many rows, exact search (faster to keep, and exact)
    ann_index_type: str = "IVF_HNSW_SQ"  # or "IVF_PQ" (refined by re-ranking with exact distances)
    nprobes: int = 8  # IVF partitions searched
    ef: int = 400  # HNSW candidate list size: recall, not latency, moves with it
    refine_factor: int = 3  # re-rank refine_factor * k ANN candidates with exact distances (IVF_PQ wants ~10)
    timeout_s: float = 60.0  # Weaviate: seconds per query (connect: at most 10, inserts: twice this)

    def resolved_backend(self) -> str:
        backend = self.backend or ("weaviate" if (self.url or os.environ.get("WEAVIATE_URL")) else "lancedb")
        if backend not in ("lancedb", "weaviate"):
            raise VectorStoreError(f"unknown vector store backend {backend!r}: use 'lancedb' or 'weaviate'")
        return backend

    def location(self) -> str:
        """Where the vectors live, for metadata (no credentials)."""
        if self.resolved_backend() == "weaviate":
            return self._weaviate_url()
        return self.uri or str(home_path("lancedb"))

    def collection(self, name: str, embedding_model: str, dimension: int | None = None,
                   rebuild: bool = False) -> "VectorCollection":
        """The collection ``name`` for vectors of ``embedding_model`` (``dimension`` floats each).

        Nothing is opened until the first operation. Then: a missing collection is created with this
        model and dimension recorded (left missing, reading as empty, when ``dimension`` is ``None``:
        the recorded one is used); one recording another model or dimension (or none) is dropped and
        created anew when ``rebuild`` (its contents are derived state), else every operation raises
        ``EmbeddingMismatchError``."""
        kind = WeaviateCollection if self.resolved_backend() == "weaviate" else LanceCollection
        return kind(self, name, Embedding(embedding_model, dimension), rebuild)

    def recorded_embedding(self, name: str) -> Embedding | None:
        """What collection ``name`` records (``None``: no such collection): read before embedding
        anything, so a query with the wrong model is refused before it costs an embedding call."""
        collection = self.collection(name, "")
        try:
            return collection.recorded()
        finally:
            collection.close()

    def _weaviate_url(self) -> str:
        url = self.url or os.environ.get("WEAVIATE_URL")
        if not url:
            raise VectorStoreError("the weaviate backend needs a URL: set WEAVIATE_URL or the resource's url")
        return url


def vector_store_resource(**overrides) -> VectorStoreResource:
    """The resource configured from the environment: Weaviate when ``WEAVIATE_URL`` is set (its key,
    ``WEAVIATE_API_KEY``, passed as an ``EnvVar``), else LanceDB under the home."""
    settings: dict[str, Any] = {}
    if os.environ.get("WEAVIATE_API_KEY"):
        settings["api_key"] = dg.EnvVar("WEAVIATE_API_KEY")
    return VectorStoreResource(**{**settings, **overrides})


class VectorCollection:
    """One collection of chunks; the operations both backends provide."""

    def __init__(self, store: VectorStoreResource, name: str, embedding: Embedding, rebuild: bool = False):
        self.store, self.name, self.embedding, self.rebuild = store, name, embedding, rebuild
        self.dimension = embedding.dimension
        self.rebuilt_from: Embedding | None = None  # set when opening it dropped vectors of another model
        self._ready = False

    # what the backends provide to open it
    def recorded(self) -> Embedding | None:
        """The embedding the stored collection records; ``None`` when there is no collection."""
        raise NotImplementedError

    def _create(self) -> None:
        raise NotImplementedError

    def _drop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _open(self) -> bool:
        """Check (once) that the stored collection holds this embedding's vectors, creating or
        rebuilding it as ``collection()`` describes; ``False``: it does not exist (reads are empty)."""
        if self._ready:
            return True
        recorded = self.recorded()
        wanted = self.embedding
        if recorded is not None and self.dimension is None and recorded.model == wanted.model:
            self.dimension = recorded.dimension  # a reader: take the recorded dimension
            wanted = Embedding(wanted.model, self.dimension)
        if recorded is None:
            if self.dimension is None:
                return False
            self._create()
        elif recorded != wanted:
            if not (self.rebuild and self.dimension):
                raise EmbeddingMismatchError(self.name, recorded, wanted)
            self._drop()
            self._create()
            self.rebuilt_from = recorded
        self._ready = True
        return True

    # writes
    def replace_documents(self, document_ids: Sequence[str], records: Sequence[dict], keep_ids: Iterable[str] = ()) -> None:
        """Make ``document_ids`` hold exactly ``records`` plus the chunks in ``keep_ids`` (already
        stored, unchanged). Atomic per call on LanceDB; on Weaviate new chunks land before stale
        ones go, so a reader never sees a document with no chunks."""
        raise NotImplementedError

    def delete_documents(self, document_ids: Sequence[str]) -> int:
        raise NotImplementedError

    def optimize(self) -> dict[str, Any]:
        """Keep indexes current (ANN once large enough, keyword); returns what it did."""
        return {}

    def index_types(self) -> dict[str, str]:
        """``{column: index type}`` of the indexes the collection has (the backend's own otherwise)."""
        return {}

    # reads
    def chunk_ids(self) -> dict[str, str]:
        """``{chunk id: document id}`` of everything stored."""
        raise NotImplementedError

    def texts(self) -> dict[str, str]:
        """``{chunk id: text}`` of everything stored (what the index's secrets check scans)."""
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def count_by(self, field: str = "source_type") -> dict[str, int]:
        raise NotImplementedError

    def search(self, vector: Sequence[float], k: int = 5) -> list[dict]:
        raise NotImplementedError

    def keyword_search(self, text: str, k: int = 5) -> list[dict]:
        raise NotImplementedError

    def hybrid_search(self, text: str, vector: Sequence[float], k: int = 5) -> list[dict]:
        raise NotImplementedError

    def query(self, mode: str, text: str, vector: Sequence[float] | None, k: int = 5) -> list[dict]:
        """Search by mode name: ``dense``, ``keyword`` or ``hybrid``."""
        if mode == "dense":
            return self.search(vector, k)
        if mode == "keyword":
            return self.keyword_search(text, k)
        if mode == "hybrid":
            return self.hybrid_search(text, vector, k)
        raise VectorStoreError(f"unknown search mode {mode!r}: use one of {', '.join(SEARCH_MODES)}")

    def _check(self, records: Sequence[dict]) -> None:
        if not self._open():
            raise VectorStoreError(f"collection {self.name} does not exist yet: open it with a dimension to write")
        for record in records:
            missing = [f for f in ("id", "document_id") if not record.get(f)]
            if record.get("vector") is None:
                missing.append("vector")
            if missing:
                raise VectorStoreError(f"record {record.get('id')!r} lacks {', '.join(missing)}")
            if len(record["vector"]) != self.dimension:
                raise VectorStoreError(
                    f"record {record['id']!r} has a {len(record['vector'])}-dimensional vector; "
                    f"collection {self.name} holds {self.dimension}-dimensional ones"
                )


# -- LanceDB ---------------------------------------------------------------------------------

def _lance_errors(method):
    """Lance's IO errors and Rust panics (``pyo3_runtime.PanicException``, a ``BaseException``) from
    unreadable table files as one :class:`UnreadableIndexError` line naming the table and the fix."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except VectorStoreError:
            raise
        except BaseException as err:  # noqa: BLE001 - only Lance's own failures are translated
            text = str(err)
            if isinstance(err, (KeyboardInterrupt, SystemExit)) or (
                    type(err).__name__ != "PanicException" and "LanceError" not in text and "lance error" not in text):
                raise
            cause = re.sub(r",\s*/\S+:\d+:\d+\s*$", "", text.strip().splitlines()[0] if text.strip() else "")
            raise UnreadableIndexError(
                f"the LanceDB table {self.name} at {self.uri} cannot be read ({cause or type(err).__name__}); it is "
                "derived from the chunks: re-materialize rag/vector_index (`reference-arch materialize rag`), "
                "which rebuilds it") from None
    return wrapper


class LanceCollection(VectorCollection):
    def __init__(self, store: VectorStoreResource, name: str, embedding: Embedding, rebuild: bool = False):
        super().__init__(store, name, embedding, rebuild)
        import lancedb

        self.uri = store.uri or str(home_path("lancedb"))
        self._db = lancedb.connect(self.uri)
        self._table = None
        self._lock = None
        self._index_cache: tuple[int, dict[str, str]] | None = None

    def _schema(self):
        import pyarrow as pa

        return pa.schema([*(pa.field(f, pa.string()) for f in FIELDS),
                          pa.field("vector", pa.list_(pa.float32(), self.dimension))],
                         metadata=Embedding(self.embedding.model, self.dimension).as_record())

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """One writer per table at a time across processes (two partitions materialized at once
        would otherwise race on commits); readers never wait. Object stores: no local lock."""
        if "://" in self.uri:
            yield
            return
        from filelock import FileLock

        if self._lock is None:  # one lock object per collection: re-entrant within this process
            self._lock = FileLock(os.path.join(self.uri, f".{self.name}.lock"), timeout=600)
        with self._lock:
            yield

    @_lance_errors
    def recorded(self) -> Embedding | None:
        if self.name not in self._db.table_names():
            return None
        metadata = self._db.open_table(self.name).schema.metadata or {}
        return Embedding.from_record({k.decode(): v.decode() for k, v in metadata.items()})

    def _create(self) -> None:
        with self._write_lock():
            self._db.create_table(self.name, schema=self._schema(), exist_ok=True)

    def _drop(self) -> None:
        with self._write_lock():
            self._db.drop_table(self.name, ignore_missing=True)
        self._table, self._index_cache = None, None

    def recreate(self) -> None:
        """Drop the table and create it empty (its files being unreadable); the caller refills it."""
        import shutil

        try:
            self._drop()
        except Exception:  # noqa: BLE001 - a table too broken to drop: remove its folder
            shutil.rmtree(os.path.join(self.uri, f"{self.name}.lance"), ignore_errors=True)
            self._table, self._index_cache = None, None
        self._create()
        self._ready = True

    def table(self):
        """The LanceDB table (``None``: it does not exist and this handle only reads)."""
        if not self._open():
            return None
        if self._table is None:
            self._table = self._db.open_table(self.name)
        else:
            self._table.checkout_latest()
        return self._table

    def _arrow(self, records: Sequence[dict]):
        import numpy as np
        import pyarrow as pa

        columns = {f: pa.array([None if r.get(f) is None else str(r[f]) for r in records], type=pa.string())
                   for f in FIELDS}
        # One float32 buffer for all vectors: no Python float per component.
        flat = np.asarray([r["vector"] for r in records], dtype=np.float32).reshape(-1)
        columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), self.dimension)
        return pa.Table.from_pydict(columns, schema=self._schema())

    @_lance_errors
    def replace_documents(self, document_ids, records, keep_ids=()) -> None:
        self._check(records)
        document_ids = sorted(set(document_ids) | {r["document_id"] for r in records})
        if not document_ids:
            return
        keep = sorted(set(keep_ids) | {r["id"] for r in records})
        stale = f"document_id IN ({_sql_list(document_ids)})"
        if keep:
            stale += f" AND id NOT IN ({_sql_list(keep)})"
        with self._write_lock():
            # One commit: insert the new chunks and delete the documents' other chunks together.
            (self.table().merge_insert("id").when_not_matched_insert_all()
             .when_not_matched_by_source_delete(stale).execute(self._arrow(records)))

    @_lance_errors
    def delete_documents(self, document_ids) -> int:
        document_ids = sorted(set(document_ids))
        if not document_ids or not self._open():
            return 0
        with self._write_lock():
            result = self.table().delete(f"document_id IN ({_sql_list(document_ids)})")
        return int(getattr(result, "num_deleted_rows", 0) or 0)

    def _indices(self, table=None) -> dict[str, str]:
        table = table or self.table()
        if self._index_cache is None or self._index_cache[0] != table.version:  # listing costs a read per query
            self._index_cache = (table.version, {i.columns[0]: i.index_type for i in table.list_indices()})
        return self._index_cache[1]

    @_lance_errors
    def index_types(self) -> dict[str, str]:
        return self._indices() if self._open() else {}

    @_lance_errors
    def optimize(self) -> dict[str, Any]:
        from lancedb.index import FTS, HnswSq, IvfPq

        if not self._open():
            return {}
        with self._write_lock():
            table = self.table()
            table.optimize()  # compact the small files each commit leaves; fold new rows into existing indexes
            rows = table.count_rows()
            indices = self._indices()
            done: dict[str, Any] = {"rows": rows}
            if rows and "text" not in indices:
                table.create_index("text", config=FTS(), replace=True)
                done["fts_index"] = "created"
            if rows >= self.store.ann_min_rows and "vector" not in indices:
                kind = self.store.ann_index_type.upper()
                if kind == "IVF_PQ":
                    config = IvfPq(distance_type="cosine", num_partitions=max(1, int(rows ** 0.5)),
                                   num_sub_vectors=max(1, self.dimension // 8))
                elif kind == "IVF_HNSW_SQ":
                    config = HnswSq(distance_type="cosine", num_partitions=max(1, rows // 200_000), ef_construction=150)
                else:
                    raise VectorStoreError(f"unsupported ANN index {kind!r}: use IVF_HNSW_SQ or IVF_PQ")
                table.create_index("vector", config=config, replace=True)
                done["ann_index"] = kind
            done["index_types"] = self._indices()
        return done

    def _columns(self, columns: list[str]):
        return self.table().search().select(columns).limit(None).to_arrow()

    @_lance_errors
    def chunk_ids(self) -> dict[str, str]:
        if not self._open():
            return {}
        data = self._columns(["id", "document_id"])
        return dict(zip(data.column("id").to_pylist(), data.column("document_id").to_pylist()))

    @_lance_errors
    def texts(self) -> dict[str, str]:
        if not self._open():
            return {}
        data = self._columns(["id", "text"])
        return dict(zip(data.column("id").to_pylist(), data.column("text").to_pylist()))

    @_lance_errors
    def count(self) -> int:
        return self.table().count_rows() if self._open() else 0

    @_lance_errors
    def count_by(self, field: str = "source_type") -> dict[str, int]:
        if field not in FIELDS:
            raise VectorStoreError(f"unknown field {field!r}")
        if not self._open():
            return {}
        column = self._columns([field]).column(field).to_pylist()
        return dict(Counter(column))

    def _rows(self, query, score_column: str, convert) -> list[dict]:
        rows = query.select([*FIELDS, score_column]).to_list()
        return [{**{f: r.get(f) for f in FIELDS}, "score": convert(float(r[score_column]))} for r in rows]

    @_lance_errors
    def search(self, vector, k=5) -> list[dict]:
        import numpy as np

        if not self._open():
            return []
        table = self.table()
        query = table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector").distance_type(
            "cosine").limit(k)
        index = self._indices(table).get("vector", "").upper()
        if index:
            query = query.nprobes(self.store.nprobes).refine_factor(self.store.refine_factor)
            if "HNSW" in index:
                query = query.ef(self.store.ef)
        return self._rows(query, "_distance", lambda d: 1.0 - d)

    @_lance_errors
    def keyword_search(self, text, k=5) -> list[dict]:
        if not text.strip() or not self.count():
            return []
        if "text" not in self._indices():
            self.optimize()
        query = self.table().search(text, query_type="fts", fts_columns="text").limit(k)
        return self._rows(query, "_score", lambda s: s)

    @_lance_errors
    def hybrid_search(self, text, vector, k=5) -> list[dict]:
        from lancedb.rerankers import RRFReranker

        if not text.strip() or not self.count():
            return self.search(vector, k)
        if "text" not in self._indices():
            self.optimize()
        query = (self.table().search(query_type="hybrid", vector_column_name="vector", fts_columns="text")
                 .vector(list(map(float, vector))).text(text).distance_type("cosine")
                 .limit(k).rerank(RRFReranker()))
        rows = query.to_list()
        return [{**{f: r.get(f) for f in FIELDS}, "score": float(r["_relevance_score"])} for r in rows]


# -- Weaviate --------------------------------------------------------------------------------

def _weaviate_errors(method):
    """One line for a Weaviate call that timed out; any error text holding a secret is scrubbed
    (the client's errors can carry the request, its Authorization header too)."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        from reference_arch.common.secrets import scrubbed

        try:
            with scrubbed(self._key(), error=VectorStoreError):
                return method(self, *args, **kwargs)
        except Exception as err:  # noqa: BLE001 - timeouts translated, the rest re-raised
            from weaviate.exceptions import WeaviateTimeoutError

            text = f"{type(err).__name__}: {err}"
            if isinstance(err, (WeaviateTimeoutError, TimeoutError)) or any(
                    t in text for t in ("DEADLINE_EXCEEDED", "ReadTimeout", "ConnectTimeout", "timed out")):
                raise VectorStoreError(
                    f"Weaviate at {self.store.location()} timed out ({method.__name__}): no answer within "
                    f"{self.store.timeout_s:g} s (raise the vector store's timeout_s for a slow server)") from None
            raise
    return wrapper


class WeaviateCollection(VectorCollection):
    """A Weaviate collection with self-provided vectors; object UUIDs derive from chunk ids."""

    def __init__(self, store: VectorStoreResource, name: str, embedding: Embedding, rebuild: bool = False):
        # Weaviate classes start upper-case
        super().__init__(store, name[:1].upper() + name[1:], embedding, rebuild)
        self._client = None

    def _connect(self):
        if self._client is not None:
            return self._client
        from urllib.parse import urlparse

        import weaviate
        from weaviate.classes.init import AdditionalConfig, Auth, Timeout
        from weaviate.exceptions import UnexpectedStatusCodeError

        url = urlparse(self.store._weaviate_url())
        secure = url.scheme == "https"
        grpc_port = self.store.grpc_port or int(os.environ.get("WEAVIATE_GRPC_PORT", "50051"))
        key, timeout = self._key(), self.store.timeout_s
        try:
            self._client = weaviate.connect_to_custom(
                http_host=url.hostname, http_port=url.port or (443 if secure else 80), http_secure=secure,
                grpc_host=url.hostname, grpc_port=grpc_port, grpc_secure=secure,
                auth_credentials=Auth.api_key(key) if key else None,
                additional_config=AdditionalConfig(timeout=Timeout(init=min(10, timeout), query=timeout,
                                                                   insert=2 * timeout)),
                skip_init_checks=True,
            )
        except UnexpectedStatusCodeError as e:
            if e.status_code not in (401, 403):
                raise
            # from None: the client's error carries the request along, its Authorization header too.
            where = f"Weaviate at {self.store.location()}"
            raise VectorStoreError(f"{where} refused the API key (HTTP {e.status_code}): check WEAVIATE_API_KEY"
                                   if key else f"{where} needs an API key: set WEAVIATE_API_KEY") from None
        return self._client

    def _key(self) -> Optional[str]:
        key = self.store.api_key
        if isinstance(key, dg.EnvVar):  # a resource used outside a Dagster run holds the EnvVar, i.e. its *name*
            key = key.get_value()
        return key or os.environ.get("WEAVIATE_API_KEY")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to tell
            pass

    def recorded(self) -> Embedding | None:
        client = self._connect()
        if not client.collections.exists(self.name):
            return None
        description = client.collections.get(self.name).config.get().description or ""
        try:
            record = json.loads(description)
        except ValueError:
            record = None
        return Embedding.from_record(record if isinstance(record, dict) else None)

    def _create(self) -> None:
        from weaviate.classes.config import Configure, DataType, Property, Tokenization

        client = self._connect()
        properties = [Property(name="chunk_id" if f == "id" else f, data_type=DataType.TEXT,
                               tokenization=Tokenization.WORD if f in ("text", "title") else Tokenization.FIELD,
                               index_searchable=f in ("text", "title"))
                      for f in FIELDS]
        record = Embedding(self.embedding.model, self.dimension).as_record()
        try:
            client.collections.create(self.name, description=json.dumps(record), properties=properties,
                                      vector_config=Configure.Vectors.self_provided(
                                          vector_index_config=Configure.VectorIndex.hnsw(distance_metric=_cosine())))
        except Exception:  # noqa: BLE001 - another writer created it first
            if not client.collections.exists(self.name):
                raise

    def _drop(self) -> None:
        self._connect().collections.delete(self.name)

    def collection(self):
        """The client's collection handle (``None``: it does not exist and this handle only reads)."""
        if not self._open():
            return None
        return self._connect().collections.get(self.name)

    @staticmethod
    def _uuid(chunk_id: str) -> str:
        from weaviate.util import generate_uuid5

        return generate_uuid5(chunk_id)

    @staticmethod
    def _properties(record: dict) -> dict:
        return {("chunk_id" if f == "id" else f): ("" if record.get(f) is None else str(record[f])) for f in FIELDS}

    def _objects_of(self, document_ids: Sequence[str]) -> dict[str, str]:
        """``{uuid: chunk id}`` of the chunks of ``document_ids``."""
        from weaviate.classes.query import Filter
        from weaviate.exceptions import WeaviateQueryError

        collection, found = self.collection(), {}
        groups = [list(document_ids[start:start + 100]) for start in range(0, len(document_ids), 100)]
        while groups:
            group = groups.pop()
            where, offset, chunks = Filter.by_property("document_id").contains_any(group), 0, {}
            try:
                while True:
                    page = collection.query.fetch_objects(filters=where, limit=1000, offset=offset,
                                                          return_properties=["chunk_id"])
                    chunks.update({str(o.uuid): o.properties["chunk_id"] for o in page.objects})
                    if len(page.objects) < 1000:
                        break
                    offset += 1000
            except WeaviateQueryError as e:
                # offset + limit may not pass QUERY_MAXIMUM_RESULTS (10,000 by default): halve the group.
                if "maximum results" not in str(e):
                    raise
                if len(group) == 1:
                    raise VectorStoreError(f"document {group[0]!r} has more chunks than Weaviate's "
                                           "QUERY_MAXIMUM_RESULTS lets one query page through") from e
                groups += [group[:len(group) // 2], group[len(group) // 2:]]
                continue
            found.update(chunks)
        return found

    @_weaviate_errors
    def replace_documents(self, document_ids, records, keep_ids=()) -> None:
        from weaviate.classes.query import Filter

        self._check(records)
        document_ids = sorted(set(document_ids) | {r["document_id"] for r in records})
        if not document_ids:
            return
        from weaviate.classes.data import DataObject
        from weaviate.exceptions import WeaviateInsertManyAllFailedError

        collection = self.collection()
        # insert_many: one synchronous gRPC batch per 200 chunks. The client's background batcher
        # (collection.batch) waits up to a second for a batch to fill, on every call.
        for start in range(0, len(records), 200):
            objects = [DataObject(properties=self._properties(r), uuid=self._uuid(r["id"]),
                                  vector=list(map(float, r["vector"]))) for r in records[start:start + 200]]
            try:
                errors = [e.message for e in collection.data.insert_many(objects).errors.values()]
            except WeaviateInsertManyAllFailedError as e:
                errors = [str(e)] * len(objects)
            if errors:
                raise VectorStoreError(f"Weaviate rejected {len(errors)} chunks, e.g. {errors[0]}")
        keep = set(keep_ids) | {r["id"] for r in records}
        stale = [u for u, chunk_id in self._objects_of(document_ids).items() if chunk_id not in keep]
        for start in range(0, len(stale), 1000):
            self._delete_where(collection, Filter.by_id().contains_any(stale[start:start + 1000]))

    @staticmethod
    def _delete_where(collection, where) -> int:
        """Delete everything ``where`` matches: one call deletes at most QUERY_MAXIMUM_RESULTS
        objects (10,000 by default), so repeat until a call deletes nothing."""
        deleted = 0
        while True:
            done = int(collection.data.delete_many(where=where).successful)
            deleted += done
            if not done:
                return deleted

    @_weaviate_errors
    def delete_documents(self, document_ids) -> int:
        from weaviate.classes.query import Filter

        document_ids, deleted = sorted(set(document_ids)), 0
        if not document_ids or not self._open():
            return 0
        collection = self.collection()
        for start in range(0, len(document_ids), 100):
            deleted += self._delete_where(
                collection, Filter.by_property("document_id").contains_any(document_ids[start:start + 100]))
        return deleted

    @_weaviate_errors
    def chunk_ids(self) -> dict[str, str]:
        if not self._open():
            return {}
        return {o.properties["chunk_id"]: o.properties["document_id"]
                for o in self.collection().iterator(return_properties=["chunk_id", "document_id"])}

    @_weaviate_errors
    def texts(self) -> dict[str, str]:
        if not self._open():
            return {}
        return {o.properties["chunk_id"]: o.properties.get("text") or ""
                for o in self.collection().iterator(return_properties=["chunk_id", "text"])}

    @_weaviate_errors
    def count(self) -> int:
        if not self._open():
            return 0
        return int(self.collection().aggregate.over_all(total_count=True).total_count or 0)

    @_weaviate_errors
    def count_by(self, field: str = "source_type") -> dict[str, int]:
        from weaviate.classes.aggregate import GroupByAggregate

        if field not in FIELDS:
            raise VectorStoreError(f"unknown field {field!r}")
        if not self._open():
            return {}
        result = self.collection().aggregate.over_all(
            group_by=GroupByAggregate(prop="chunk_id" if field == "id" else field), total_count=True)
        return {str(g.grouped_by.value): int(g.total_count or 0) for g in result.groups}

    def _rows(self, objects, score) -> list[dict]:
        rows = []
        for o in objects:
            row = {f: o.properties.get("chunk_id" if f == "id" else f) for f in FIELDS}
            rows.append({**row, "score": float(score(o.metadata))})
        return rows

    @_weaviate_errors
    def search(self, vector, k=5) -> list[dict]:
        from weaviate.classes.query import MetadataQuery

        if not self._open():
            return []
        result = self.collection().query.near_vector(near_vector=list(map(float, vector)), limit=k,
                                                     return_metadata=MetadataQuery(distance=True))
        return self._rows(result.objects, lambda m: 1.0 - (m.distance or 0.0))

    @_weaviate_errors
    def keyword_search(self, text, k=5) -> list[dict]:
        from weaviate.classes.query import MetadataQuery

        if not text.strip() or not self._open():
            return []
        result = self.collection().query.bm25(query=text, limit=k, query_properties=["text", "title"],
                                              return_metadata=MetadataQuery(score=True))
        return self._rows(result.objects, lambda m: m.score or 0.0)

    @_weaviate_errors
    def hybrid_search(self, text, vector, k=5) -> list[dict]:
        from weaviate.classes.query import HybridFusion, MetadataQuery

        if not text.strip() or not self._open():
            return self.search(vector, k)
        result = self.collection().query.hybrid(query=text, vector=list(map(float, vector)), alpha=0.5, limit=k,
                                                query_properties=["text", "title"],
                                                fusion_type=HybridFusion.RELATIVE_SCORE,
                                                return_metadata=MetadataQuery(score=True))
        return self._rows(result.objects, lambda m: m.score or 0.0)


def _cosine():
    from weaviate.classes.config import VectorDistances

    return VectorDistances.COSINE
