"""What both vector store backends share: the chunk record, the embedding a collection records,
the errors, and ``VectorCollection``, the operations every backend provides.

Records are chunks: the string fields in ``FIELDS`` plus a normalised ``vector``. Writes go
through ``replace_documents`` (atomic per document: a document's new chunks appear and its
stale chunks disappear together) and ``delete_documents``; reads are dense, keyword and hybrid
(keyword + vector) search and counts. A collection records the embedding model and dimension its vectors come from
(LanceDB: the table's schema metadata; Weaviate: the collection's description), so vectors of two
models never mix: opened for another model, it is rebuilt (``rebuild=True``, for the writer of a
derived index) or refused with ``EmbeddingMismatchError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    from reference_arch.common.vector_store.resource import VectorStoreResource

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

