"""Retrieval: chunks from the vector store, grouped into ranked source documents.

A question retrieves chunks (dense, keyword or hybrid search); several chunks of one document make
one source, ranked by its best chunk, whose text is its retrieved chunks in document order. Answers
cite sources, and the evaluation scores documents, so both see the same ranking.
"""

from __future__ import annotations

import json

from reference_arch.common.vector_store import SEARCH_MODES
from reference_arch.rag.config import rag_dir

# Until rag/retrieval_evaluation has run: the mode with the best mean dev recall@5 over the shipped sets
# (samples + the pandas and numpy APIs: dense 0.752, keyword 0.477, hybrid 0.660; bench/results/).
DEFAULT_MODE = "dense"
CHUNKS_PER_SOURCE = 4  # chunks fetched per wanted source: enough distinct documents after grouping


def best_mode_path():
    return rag_dir() / "retrieval_evaluation.json"


def default_mode() -> str:
    """The mode with the best mean dev recall@k over the question sets when ``rag/retrieval_evaluation``
    last ran, else ``DEFAULT_MODE``."""
    path = best_mode_path()
    try:
        mode = json.loads(path.read_text()).get("best_mode") if path.exists() else None
    except (OSError, ValueError, AttributeError):  # derived by rag/retrieval_evaluation: its next run rewrites it
        mode = None
    return mode if mode in SEARCH_MODES else DEFAULT_MODE


def group_sources(chunks: list[dict], k: int) -> list[dict]:
    """Chunks (best first) -> up to ``k`` sources, one per document, best first."""
    sources: dict[str, dict] = {}
    for chunk in chunks:
        doc = chunk["document_id"]
        if doc not in sources:
            if len(sources) == k:
                continue
            sources[doc] = {"document_id": doc, "title": chunk["title"], "source": chunk["source"],
                            "url": chunk.get("url") or "", "source_type": chunk["source_type"],
                            "score": float(chunk["score"]), "chunks": []}
        sources[doc]["chunks"].append(chunk)
    ranked = list(sources.values())
    for rank, source in enumerate(ranked, 1):
        parts = source.pop("chunks")
        source["rank"] = rank
        source["chunk_ids"] = [c["id"] for c in parts]
        source["text"] = "\n\n".join(c["text"] for c in parts)
    return ranked


def retrieve(collection, question: str, question_vector, mode: str, k: int = 5) -> list[dict]:
    """The top ``k`` source documents for a question."""
    if mode not in SEARCH_MODES:
        raise ValueError(f"unknown retrieval mode {mode!r}: use one of {', '.join(SEARCH_MODES)}")
    hits = collection.query(mode, question, question_vector, k * CHUNKS_PER_SOURCE)
    return group_sources(hits, k)
