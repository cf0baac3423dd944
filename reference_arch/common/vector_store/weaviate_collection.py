"""The Weaviate backend: a collection with self-provided vectors; object UUIDs derive from chunk ids."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Sequence

from reference_arch.common.vector_store.collection import FIELDS, Embedding, VectorCollection, VectorStoreError
from reference_arch.common.vector_store.weaviate_connection import connect, cosine, weaviate_errors

if TYPE_CHECKING:
    from reference_arch.common.vector_store.resource import VectorStoreResource


class WeaviateCollection(VectorCollection):
    """A Weaviate collection with self-provided vectors; object UUIDs derive from chunk ids."""

    def __init__(self, store: VectorStoreResource, name: str, embedding: Embedding, rebuild: bool = False):
        # Weaviate classes start upper-case
        super().__init__(store, name[:1].upper() + name[1:], embedding, rebuild)
        self._client = None

    def _connect(self):
        if self._client is None:
            self._client = connect(self.store)
        return self._client

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
                                          vector_index_config=Configure.VectorIndex.hnsw(distance_metric=cosine())))
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

    @weaviate_errors
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

    @weaviate_errors
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

    @weaviate_errors
    def chunk_ids(self) -> dict[str, str]:
        if not self._open():
            return {}
        return {o.properties["chunk_id"]: o.properties["document_id"]
                for o in self.collection().iterator(return_properties=["chunk_id", "document_id"])}

    @weaviate_errors
    def texts(self) -> dict[str, str]:
        if not self._open():
            return {}
        return {o.properties["chunk_id"]: o.properties.get("text") or ""
                for o in self.collection().iterator(return_properties=["chunk_id", "text"])}

    @weaviate_errors
    def count(self) -> int:
        if not self._open():
            return 0
        return int(self.collection().aggregate.over_all(total_count=True).total_count or 0)

    @weaviate_errors
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

    @weaviate_errors
    def search(self, vector, k=5) -> list[dict]:
        from weaviate.classes.query import MetadataQuery

        if not self._open():
            return []
        result = self.collection().query.near_vector(near_vector=list(map(float, vector)), limit=k,
                                                     return_metadata=MetadataQuery(distance=True))
        return self._rows(result.objects, lambda m: 1.0 - (m.distance or 0.0))

    @weaviate_errors
    def keyword_search(self, text, k=5) -> list[dict]:
        from weaviate.classes.query import MetadataQuery

        if not text.strip() or not self._open():
            return []
        result = self.collection().query.bm25(query=text, limit=k, query_properties=["text", "title"],
                                              return_metadata=MetadataQuery(score=True))
        return self._rows(result.objects, lambda m: m.score or 0.0)

    @weaviate_errors
    def hybrid_search(self, text, vector, k=5) -> list[dict]:
        from weaviate.classes.query import HybridFusion, MetadataQuery

        if not text.strip() or not self._open():
            return self.search(vector, k)
        result = self.collection().query.hybrid(query=text, vector=list(map(float, vector)), alpha=0.5, limit=k,
                                                query_properties=["text", "title"],
                                                fusion_type=HybridFusion.RELATIVE_SCORE,
                                                return_metadata=MetadataQuery(score=True))
        return self._rows(result.objects, lambda m: m.score or 0.0)
