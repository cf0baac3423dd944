"""RAG step 3, the vector index: the vector store made to hold exactly the current chunks.

Documents whose chunk ids changed are replaced atomically (new chunks in, stale chunks out, in one commit on
LanceDB); documents that disappeared are deleted; unchanged documents are not touched. The index records the
embedding model it was built with and refuses vectors of another.
"""

import dagster as dg

from reference_arch.common.locations import asset_defaults
from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch.common.vector_store import FIELDS, UnreadableIndexError, VectorStoreResource
from reference_arch.rag.defs.processing import AFTER_INGESTION, COLLECTION, chunk_embeddings, chunks_path, \
    embedding_cache, read_rows

REPLACE_BATCH = 200  # documents per atomic replace


def open_collection(embeddings: EmbeddingsResource, vector_store: VectorStoreResource, dimension: int | None = None):
    """The index's collection for the embeddings resource's model. With ``dimension`` (the writer,
    ``rag/vector_index``): an index of another model is rebuilt, never mixed. Without (readers): an
    index of another model is refused with ``IndexModelError`` before anything is embedded, and the
    dimension is the recorded one (no embedding call to learn it)."""
    model = embeddings.model_label()
    if dimension is None:
        recorded = vector_store.recorded_embedding(COLLECTION)
        if recorded is not None and recorded.model != model:
            raise IndexModelError(index_model_message(recorded.model, model))
    return vector_store.collection(COLLECTION, model, dimension, rebuild=dimension is not None)


class IndexModelError(RuntimeError):
    """The index holds vectors of another embedding model than the embeddings resource's."""


def index_model_message(built_with: str | None, now: str) -> str:
    """One line: both models and the two fixes."""
    built = f"embedding model {built_with}" if built_with else "an embedding model it does not record"
    back = f" to {built_with}" if built_with else ""
    return (f"the vector index was built with {built}, but the embeddings resource now uses {now}: "
            f"re-materialize rag (`reference-arch materialize rag`) to rebuild the index with {now}, or set "
            f"the embeddings back{back} (REFERENCE_ARCH_EMBEDDINGS_PROVIDER, REFERENCE_ARCH_EMBEDDINGS_MODEL)")


def sync_index(collection, rows: list[dict], vectors_for, log=None) -> dict[str, int]:
    """Make ``collection`` hold exactly ``rows`` (chunks): replace changed documents, delete vanished ones."""
    stored: dict[str, set[str]] = {}
    for chunk_id, doc_id in collection.chunk_ids().items():
        stored.setdefault(doc_id, set()).add(chunk_id)
    wanted: dict[str, list[dict]] = {}
    for row in rows:
        wanted.setdefault(row["document_id"], []).append(row)
    changed = [d for d, chunk_rows in wanted.items() if {r["id"] for r in chunk_rows} != stored.get(d, set())]
    inserted = 0
    for start in range(0, len(changed), REPLACE_BATCH):
        batch = changed[start:start + REPLACE_BATCH]
        new = [r for d in batch for r in wanted[d] if r["id"] not in stored.get(d, set())]
        keep = [r["id"] for d in batch for r in wanted[d] if r["id"] in stored.get(d, set())]
        vectors = vectors_for([r["text_hash"] for r in new])
        records = [{**{f: r.get(f) for f in FIELDS}, "vector": v} for r, v in zip(new, vectors)]
        collection.replace_documents(batch, records, keep_ids=keep)
        inserted += len(records)
        if log:
            log(f"replaced {min(start + REPLACE_BATCH, len(changed))}/{len(changed)} documents")
    vanished = sorted(set(stored) - set(wanted))
    deleted_chunks = sum(len(stored[d]) for d in vanished)
    collection.delete_documents(vanished)
    return {"documents_replaced": len(changed), "documents_deleted": len(vanished),
            "documents_unchanged": len(wanted) - len(changed), "chunks_inserted": inserted,
            "chunks_deleted": deleted_chunks + sum(len(stored.get(d, set()) - {r["id"] for r in wanted[d]})
                                                   for d in changed)}


@dg.asset(
    **asset_defaults("rag"), kinds={"lancedb", "weaviate"},
    deps=[chunk_embeddings], automation_condition=AFTER_INGESTION,
    description="The chunks and their vectors in the vector store (LanceDB under the home, or Weaviate with "
                "WEAVIATE_URL), exactly as in rag/chunks: changed documents replaced atomically, vanished "
                "ones deleted; keyword index for hybrid search, ANN index once the table is large.",
)
def vector_index(context: dg.AssetExecutionContext, embeddings: EmbeddingsResource,
                 vector_store: VectorStoreResource) -> dg.MaterializeResult:
    rows = read_rows(chunks_path())
    cache = embedding_cache(embeddings)
    missing = cache.missing(r["text_hash"] for r in rows)
    if missing:
        raise dg.Failure(description=f"{len(missing)} chunks have no embedding yet: materialize rag/embeddings "
                                     "first (the index is left as it was)")
    # The writer: an index built with another model is dropped and rebuilt (derived state), never mixed.
    collection = open_collection(embeddings, vector_store, cache.dimension or embeddings.dimension())
    rebuilt = 0
    try:
        changes = sync_index(collection, rows, cache.vectors, log=context.log.info)
    except UnreadableIndexError as err:  # derived from the chunks: rebuild it rather than fail forever
        context.log.warning(f"{err}; rebuilding it from the {len(rows)} chunks now")
        collection.recreate()
        changes, rebuilt = sync_index(collection, rows, cache.vectors, log=context.log.info), 1
    if collection.rebuilt_from is not None:
        context.log.info(f"rebuilt the index: it held vectors of {collection.rebuilt_from.describe()}")
    if changes["chunks_inserted"] or changes["chunks_deleted"] or not collection.index_types():
        collection.optimize()  # unchanged data needs no index maintenance
    indexes = collection.index_types()
    counts = collection.count_by("source_type")
    return dg.MaterializeResult(metadata={
        **changes, "rows": collection.count(), "index_rebuilt": rebuilt,
        **{f"source_type/{k}": v for k, v in sorted(counts.items())},
        "backend": vector_store.resolved_backend(), "collection": collection.name,
        "embedding_model": embeddings.model_label(), "embedding_dimension": collection.dimension,
        "rebuilt_from": collection.rebuilt_from.describe() if collection.rebuilt_from else "",
        "location": dg.MetadataValue.path(vector_store.location()) if vector_store.resolved_backend() == "lancedb"
        else dg.MetadataValue.url(vector_store.location()),
        "indexes": dg.MetadataValue.text(", ".join(f"{c}: {t}" for c, t in indexes.items()) or "none"),
        "ann_index": "vector" in indexes,
    })
