"""RAG step 2, processing: documents -> chunks -> embeddings, each step skipping what did not change.

- ``rag/documents``: every ingested record in one document shape (``documents.py``), a Parquet file.
- ``rag/chunks``: documents cut into chunks that fit the embedding model (``chunking.py``); documents
  whose content hash and chunk settings are unchanged keep their previous chunks without re-chunking.
- ``rag/embeddings``: a vector per chunk text, cached by text hash (``embedding_cache.py``): only new
  texts are embedded.

These assets and ``rag/vector_index`` (``index.py``) are unpartitioned and follow the ingestion assets through
declarative automation (``AFTER_INGESTION``); ``rag_index_job`` runs them explicitly.
"""

import time
from collections import Counter
from pathlib import Path

import dagster as dg

from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch.common.locations import asset_defaults
from reference_arch.common.metadata import table
from reference_arch.common.pools import pool_for
from reference_arch.common.resources import embeddings_resource
from reference_arch.rag.config import rag_dir
from reference_arch.rag.defs.ingestion import DLT_RESOURCES, dlt_asset_key

# Run after any upstream update, once the upstream runs are done; partitions never materialized
# (most days have no GitHub activity) do not block it, unlike AutomationCondition.eager().
AFTER_INGESTION = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after upstream updates")
COLLECTION = "chunks"


def documents_path() -> Path:
    return rag_dir() / "documents.parquet"


def chunks_path() -> Path:
    return rag_dir() / "chunks.parquet"


def write_rows(path: Path, rows: list[dict], fields) -> None:
    """Rows as a Parquet file, replaced atomically (readers see the old file or the new one)."""
    import pyarrow as pa

    from reference_arch.common.atomic import write_parquet

    arrow = pa.Table.from_pylist([{f: r.get(f) for f in fields} for r in rows]) if rows else pa.table(
        {f: pa.array([], type=pa.string()) for f in fields})
    write_parquet(path, arrow)


# Which asset writes each derived file: what to re-materialize when one cannot be read.
WRITTEN_BY = {"documents.parquet": "rag/documents", "chunks.parquet": "rag/chunks"}


def read_rows(path: Path, columns: list[str] | None = None) -> list[dict]:
    """The rows of a Parquet file written by ``write_rows``; ``[]`` when it does not exist; a
    failure naming the file and the asset that rebuilds it when it cannot be read."""
    if not path.exists():
        return []
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns).to_pylist()
    except Exception as err:  # noqa: BLE001 - truncated or not Parquet: say which asset rebuilds it
        asset = WRITTEN_BY.get(path.name, "the asset that writes it")
        raise dg.Failure(description=f"{path} cannot be read ({type(err).__name__}: "
                                     f"{(str(err).strip().splitlines() or [''])[0]}); it is "
                                     f"derived: re-materialize {asset} (`reference-arch materialize rag`)") from None


def read_previous(context, path: Path, columns: list[str] | None = None) -> tuple[list[dict], int]:
    """``(rows, 0)`` of an asset's own previous output, or ``([], 1)`` with a warning when it cannot be
    read: the asset is about to rewrite it, so it starts over instead of failing forever."""
    try:
        return read_rows(path, columns), 0
    except dg.Failure as failure:
        context.log.warning(f"{failure.description.split('; it is derived')[0]}; rebuilding it from scratch")
        return [], 1


def _counts(rows: list[dict], field: str = "source_type") -> dict[str, int]:
    return {f"{field}/{k}": v for k, v in sorted(Counter(r[field] for r in rows).items())}


@dg.asset(
    **asset_defaults("rag"), kinds={"python", "parquet"},
    deps=[dlt_asset_key(s, r) for s, resources in DLT_RESOURCES.items() for r in resources],
    automation_condition=AFTER_INGESTION,
    description="Every ingested GitHub issue (with its human comments), Slack thread and docs page as one "
                "document shape: id, source_type, title, source, url, text, timestamps, content hash; secrets "
                "and personal data masked with typed placeholders (the warehouse keeps the raw text).",
)
def documents(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    from reference_arch.common.redaction import counts_metadata, redactor
    from reference_arch.common.settings import enabled_sources
    from reference_arch.rag.documents import DOCUMENT_FIELDS, load_documents, redact_documents

    try:
        masker = redactor()
        docs = load_documents()
    except (FileNotFoundError, ValueError) as err:  # a docs folder, package or redaction setting that is wrong
        raise dg.Failure(description=f"cannot list the documents: {err}") from None
    started = time.perf_counter()
    docs, masked = redact_documents(docs, masker)
    redaction = {**counts_metadata(masked), "redaction": masker.fingerprint(),
                 "redaction_seconds": round(time.perf_counter() - started, 2)}
    if not docs:  # a valid state (an emptied docs folder, every source off): the index empties too
        context.log.warning("no documents: the enabled sources hold nothing yet "
                            f"(enabled: {', '.join(sorted(enabled_sources())) or 'none'})")
    previous, unreadable = read_previous(context, documents_path(), ["id", "content_hash"])
    before = {r["id"]: r["content_hash"] for r in previous}
    now = {d["id"]: d["content_hash"] for d in docs}
    write_rows(documents_path(), docs, DOCUMENT_FIELDS)
    return dg.MaterializeResult(metadata={
        "documents": len(docs), **_counts(docs),
        "new": sum(1 for k in now if k not in before),
        "changed": sum(1 for k, h in now.items() if k in before and before[k] != h),
        "removed": sum(1 for k in before if k not in now), "previous_unreadable": unreadable, **redaction,
        "path": dg.MetadataValue.path(str(documents_path())),
        "sample": table(docs[:: max(1, len(docs) // 10)], ["id", "title", "source", "updated_at"], 10, 200),
    })


def placeholders_metadata(rows: list[dict]) -> dict[str, int]:
    """The redaction placeholders the chunks hold, per type and per source type (overlapping chunks
    can repeat one)."""
    from reference_arch.common.redaction import counts_metadata, placeholder_counts

    by_source: dict[str, Counter] = {}
    for row in rows:
        by_source.setdefault(row["source_type"], Counter()).update(placeholder_counts(row["text"]))
    return counts_metadata(by_source)


class ChunksConfig(dg.Config):
    chunk_tokens: int = 192  # a chunk's body; context line and special tokens come on top, within the limit
    overlap_tokens: int = 24


@dg.asset(
    **asset_defaults("rag"), kinds={"python", "parquet"},
    deps=[documents], automation_condition=AFTER_INGESTION,
    description="Documents cut with langchain-text-splitters into chunks sized in the embedding model's own "
                "tokens (Markdown headings, numpydoc and rst sections, code fences respected); each chunk "
                "starts with its document's title and section. Id: document id + content hash.",
)
def chunks(context: dg.AssetExecutionContext, config: ChunksConfig, embeddings: EmbeddingsResource):
    from reference_arch.rag.chunking import CHUNK_FIELDS, ChunkSettings, chunk_document

    docs = read_rows(documents_path())
    limit = embeddings.max_tokens()
    if config.chunk_tokens < 16 or config.overlap_tokens < 0 or config.overlap_tokens >= config.chunk_tokens:
        raise dg.Failure(description=f"chunk_tokens must be at least 16 and overlap_tokens between 0 and "
                                     f"chunk_tokens (got {config.chunk_tokens}, {config.overlap_tokens})")
    settings = ChunkSettings(max_tokens=limit, chunk_tokens=config.chunk_tokens, overlap_tokens=config.overlap_tokens)
    chunker = settings.fingerprint(embeddings.model_label())
    previous: dict[str, list[dict]] = {}
    rows_before, unreadable = read_previous(context, chunks_path())
    for row in rows_before:
        previous.setdefault(row["document_id"], []).append(row)
    count = embeddings.token_counter()
    rows, rechunked = [], 0
    for doc in docs:
        old = previous.get(doc["id"])
        if old and old[0]["document_hash"] == doc["content_hash"] and old[0]["chunker"] == chunker:
            rows += sorted(old, key=lambda r: r["position"])
        else:
            rows += chunk_document(doc, count, settings, chunker)
            rechunked += 1
    write_rows(chunks_path(), rows, CHUNK_FIELDS)
    tokens = [r["tokens"] for r in rows]
    return dg.MaterializeResult(metadata={
        "chunks": len(rows), **_counts(rows), **placeholders_metadata(rows), "documents_rechunked": rechunked,
        "documents_unchanged": len(docs) - rechunked, "previous_unreadable": unreadable, "token_limit": limit,
        "max_tokens": max(tokens, default=0), "mean_tokens": round(sum(tokens) / max(1, len(tokens)), 1),
        "total_tokens": sum(tokens), "chunker": chunker, "path": dg.MetadataValue.path(str(chunks_path())),
        "sample": table(rows[:: max(1, len(rows) // 10)], ["id", "tokens", "text"], 10, 200),
    })


def embedding_cache(embeddings: EmbeddingsResource, name: str = "chunks"):
    from reference_arch.rag.embedding_cache import EmbeddingCache, cache_path

    return EmbeddingCache(cache_path(embeddings.model_label(), name))


@dg.asset(
    **asset_defaults("rag"), name="embeddings", kinds={"python", "huggingface", "openai"},
    deps=[chunks], automation_condition=AFTER_INGESTION,
    pool=pool_for(embeddings_resource().provider),  # OpenAI: the whole corpus, in batches
    description="A normalised vector per chunk from the embeddings resource (local all-MiniLM-L6-v2 or OpenAI), "
                "cached by text hash: texts already embedded with this model are not embedded again.",
)
def chunk_embeddings(context: dg.AssetExecutionContext, embeddings: EmbeddingsResource) -> dg.MaterializeResult:
    from reference_arch.rag.embedding_cache import cached_embed

    rows = read_rows(chunks_path(), ["text_hash", "text"])
    cache = embedding_cache(embeddings)
    if cache.unreadable:
        context.log.warning(f"the embedding cache {cache.path} could not be read ({cache.unreadable}); "
                            "rebuilding it: every chunk is embedded again")
    keys = [r["text_hash"] for r in rows]
    started = time.perf_counter()
    embedded = cached_embed(cache, keys, [r["text"] for r in rows], embeddings.embed_array, log=context.log.info)
    seconds = time.perf_counter() - started
    cache.keep_only(keys)
    cache.save()
    return dg.MaterializeResult(metadata={
        "chunks": len(rows), "embedded": embedded, "reused": len(set(keys)) - embedded,
        "embedding_seconds": round(seconds, 2),
        "chunks_per_second": round(embedded / seconds, 1) if embedded and seconds else 0.0,
        "model": embeddings.model_label(), "dimension": cache.dimension or 0,
        "cache_rebuilt": int(bool(cache.unreadable)),
        "cache": dg.MetadataValue.path(str(cache.path)),
    })
