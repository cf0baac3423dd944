"""The vector store resource: LanceDB embedded under the home (default) or Weaviate.

``VectorStoreResource.collection`` opens a collection of chunks (``collection.VectorCollection``)
on the chosen backend: ``lance_collection.LanceCollection`` or ``weaviate_collection.WeaviateCollection``.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import dagster as dg

from reference_arch.common.settings import home_path
from reference_arch.common.vector_store.collection import Embedding, VectorCollection, VectorStoreError
from reference_arch.common.vector_store.lance_collection import LanceCollection
from reference_arch.common.vector_store.weaviate_collection import WeaviateCollection


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
