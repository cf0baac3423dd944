"""Asset checks on the chunks and the index (retrieval quality is checked in ``evaluation.py``).

The two secrets checks are blocking: chunks holding a known secret pattern are not embedded (which may send
them to OpenAI), and an index holding one is not searched by the evaluation in the same run."""

from collections import Counter

import dagster as dg

from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch.common.vector_store import VectorStoreResource
from reference_arch.rag.defs.processing import chunks, chunks_path, read_rows
from reference_arch.rag.defs.index import open_collection, vector_index


@dg.asset_check(asset=chunks, description="Every chunk has text beyond its context line and fits the embedding "
                                          "model (recounted with the model's tokenizer, special tokens included).")
def chunks_within_token_limit(embeddings: EmbeddingsResource) -> dg.AssetCheckResult:
    rows = read_rows(chunks_path(), ["id", "text"])
    limit = embeddings.max_tokens()
    count = embeddings.token_counter(special_tokens=True)
    sizes = [count(r["text"]) for r in rows]
    empty = [r["id"] for r in rows if len(r["text"].split("\n\n", 1)[-1].strip()) == 0]
    over = [r["id"] for r, n in zip(rows, sizes) if n > limit]
    return dg.AssetCheckResult(
        passed=not empty and not over,  # no chunks at all is valid: the enabled sources hold no documents
        description=None if rows else "no chunks: the enabled sources hold no documents",
        metadata={"chunks": len(rows), "token_limit": limit, "max_tokens": max(sizes, default=0),
                  "empty": len(empty), "over_limit": len(over),
                  "examples": dg.MetadataValue.text(", ".join((empty + over)[:5]) or "none")},
    )


@dg.asset_check(asset=chunks, description="Chunk ids are unique.")
def chunk_ids_unique() -> dg.AssetCheckResult:
    ids = [r["id"] for r in read_rows(chunks_path(), ["id"])]
    duplicates = [i for i, n in Counter(ids).items() if n > 1]
    return dg.AssetCheckResult(passed=not duplicates, metadata={
        "chunks": len(ids), "duplicates": len(duplicates),
        "examples": dg.MetadataValue.text(", ".join(duplicates[:5]) or "none")})


@dg.asset_check(asset=vector_index, description="The index holds exactly the chunks: the same ids, the same count "
                                                "per source type, no duplicates.")
def index_matches_chunks(embeddings: EmbeddingsResource, vector_store: VectorStoreResource) -> dg.AssetCheckResult:
    rows = read_rows(chunks_path(), ["id", "source_type"])
    collection = open_collection(embeddings, vector_store)
    stored = collection.chunk_ids()
    total = collection.count()
    in_index = collection.count_by("source_type")
    in_chunks = dict(Counter(r["source_type"] for r in rows))
    missing = {r["id"] for r in rows} - set(stored)
    extra = set(stored) - {r["id"] for r in rows}
    metadata = {"chunks": len(rows), "index_rows": total, "missing": len(missing), "extra": len(extra),
                "duplicates": total - len(stored)}
    for source_type in sorted(set(in_index) | set(in_chunks)):
        metadata[f"{source_type}/chunks"] = in_chunks.get(source_type, 0)
        metadata[f"{source_type}/index"] = in_index.get(source_type, 0)
    return dg.AssetCheckResult(
        passed=in_index == in_chunks and not missing and not extra and total == len(stored), metadata=metadata)


@dg.asset_check(asset=chunks, blocking=True,
                description="No chunk holds a known secret pattern (detect-secrets' plugins, common/redaction.py): "
                            "secrets are masked before chunking, and chunks are embedded next.")
def no_secrets_in_chunks() -> dg.AssetCheckResult:
    from reference_arch.common.redaction import secrets_check

    return secrets_check({r["id"]: r["text"] for r in read_rows(chunks_path(), ["id", "text"])}, "chunks")


@dg.asset_check(asset=vector_index, blocking=True,
                description="No text stored in the vector index holds a known secret pattern.")
def no_secrets_in_index(embeddings: EmbeddingsResource, vector_store: VectorStoreResource) -> dg.AssetCheckResult:
    from reference_arch.common.redaction import secrets_check

    collection = open_collection(embeddings, vector_store)
    try:
        return secrets_check(collection.texts(), "index_rows")
    finally:
        collection.close()


def no_documents_message() -> str:
    """One line for an empty index: what happened and where documents go (the enabled sources' settings)."""
    from reference_arch.common.settings import SOURCE_SETTINGS, SOURCES_ENV, enabled_sources
    from reference_arch.sources.docs.helpers import DOCS_DIR_ENV, default_docs_dir

    enabled = sorted(enabled_sources())
    if not enabled:
        return (f"no documents: every source is off ({SOURCES_ENV}=none), so the index is empty; turn one on and "
                "run again")
    places = [f"{default_docs_dir()} ({DOCS_DIR_ENV})" if name == "docs" else
              f"the {name} source ({' or '.join(SOURCE_SETTINGS[name])})" for name in enabled]
    return (f"no documents: the enabled sources ({', '.join(enabled)}) hold none, so the index is empty; "
            f"add documents to {' or '.join(places)} and run again")


@dg.asset_check(asset=vector_index, blocking=True,
                description="The index holds some chunks. An emptied docs folder (or every source off) empties the "
                            "index, which is valid, but no question can be answered from it: blocking, so the "
                            "question in the same run is not asked, and the failure says where documents go.")
def index_has_documents(embeddings: EmbeddingsResource, vector_store: VectorStoreResource) -> dg.AssetCheckResult:
    collection = open_collection(embeddings, vector_store)
    try:
        rows = collection.count()
    finally:
        collection.close()
    return dg.AssetCheckResult(passed=rows > 0, metadata={"index_rows": rows},
                               description=None if rows else no_documents_message())
