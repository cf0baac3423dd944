"""Chunk vectors and the embeddings that make them.

- ``resource``: ``VectorStoreResource`` (LanceDB embedded under the home, or Weaviate) and its factory
- ``collection``: what every backend shares: the record ``FIELDS``, ``SEARCH_MODES``, the ``Embedding`` a
  collection records, the errors, and ``VectorCollection``, the operations a backend provides
- ``lance_collection``, ``weaviate_collection`` (with ``weaviate_connection``): the two backends
- ``embeddings``: ``EmbeddingsResource`` (local sentence-transformers or OpenAI)

The store's public names are importable from here: ``from reference_arch.common.vector_store import
VectorStoreResource``. Nothing here imports lancedb or weaviate: the backends import them when used.
"""

from reference_arch.common.vector_store.collection import (FIELDS, SEARCH_MODES, Embedding, EmbeddingMismatchError,
                                                          UnreadableIndexError, VectorCollection, VectorStoreError)
from reference_arch.common.vector_store.resource import VectorStoreResource, vector_store_resource

__all__ = ["FIELDS", "SEARCH_MODES", "Embedding", "EmbeddingMismatchError", "UnreadableIndexError",
           "VectorCollection", "VectorStoreError", "VectorStoreResource", "vector_store_resource"]
