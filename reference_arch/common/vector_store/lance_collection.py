"""The LanceDB backend: a table under the home (or an object-store URI) per collection.

LanceDB searches exactly until a table reaches ``ann_min_rows``; then an ANN index
(IVF_HNSW_SQ, or IVF_PQ with refinement) is built and kept up to date by ``optimize``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from reference_arch.common.settings import home_path
from reference_arch.common.vector_store.collection import (FIELDS, Embedding, UnreadableIndexError, VectorCollection,
                                                          VectorStoreError)

if TYPE_CHECKING:
    from reference_arch.common.vector_store.resource import VectorStoreResource


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


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
