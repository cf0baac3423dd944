"""Vectors by the hash of the text they embed, one Parquet file per embedding model under the home.

Embedding is the slow step: a text is embedded once per model, whatever document or chunking it
comes from, so re-materializing unchanged data, switching the vector store backend or rebuilding the
index costs no model call. The file is rewritten atomically (temporary file, then rename). A file that
cannot be read (truncated, not Parquet) is derived state: it is set aside as ``*.parquet.unreadable`` and the
cache starts empty (``unreadable`` says why), so the next embedding step rebuilds it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

from reference_arch.common.atomic import set_aside
from reference_arch.rag.config import rag_dir


def cache_path(model_label: str, name: str = "chunks") -> Path:
    slug = re.sub(r"[^0-9a-zA-Z]+", "_", model_label.rsplit("/", 1)[-1]).strip("_").lower()
    return rag_dir("embeddings", slug) / f"{name}.parquet"


class EmbeddingCache:
    def __init__(self, path: Path):
        import numpy as np

        self.path = path
        self.index: dict[str, int] = {}
        self.matrix = np.zeros((0, 0), dtype=np.float32)
        self.changed = False
        self.unreadable: str | None = None  # why the file on disk could not be read, if it could not
        if path.exists():
            try:
                self._read()
            except Exception as err:  # noqa: BLE001 - any unreadable file: derived, rebuilt
                self.unreadable = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
                self.index, self.matrix = {}, np.zeros((0, 0), dtype=np.float32)
                set_aside(path)  # kept once, for a look, as *.parquet.unreadable; the next save rebuilds

    def _read(self) -> None:
        import numpy as np
        import pyarrow.parquet as pq

        table = pq.read_table(self.path)
        keys = table.column("key").to_pylist()
        if keys:
            flat = table.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False)
            self.matrix = flat.astype(np.float32).reshape(len(keys), -1)
        self.index = {k: i for i, k in enumerate(keys)}

    @property
    def dimension(self) -> int | None:
        return self.matrix.shape[1] if len(self.index) else None

    def missing(self, keys: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(k for k in keys if k not in self.index))

    def add(self, keys: Sequence[str], vectors) -> None:
        import numpy as np

        if not len(keys):
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(self.index) and vectors.shape[1] != self.matrix.shape[1]:
            raise ValueError(f"{self.path}: {vectors.shape[1]}-dimensional vectors added to a cache of "
                             f"{self.matrix.shape[1]}-dimensional ones")
        start = len(self.index)
        self.matrix = vectors if not start else np.vstack([self.matrix, vectors])
        self.index.update({k: start + i for i, k in enumerate(keys)})
        self.changed = True

    def vectors(self, keys: Sequence[str]):
        return self.matrix[[self.index[k] for k in keys]]

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget vectors no current text needs (the file would otherwise only grow)."""
        wanted = [k for k in dict.fromkeys(keys) if k in self.index]
        if len(wanted) != len(self.index):
            self.matrix = self.vectors(wanted)
            self.index = {k: i for i, k in enumerate(wanted)}
            self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        import pyarrow as pa

        from reference_arch.common.atomic import write_parquet

        dim = self.matrix.shape[1] if len(self.index) else 0
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(self.matrix.reshape(-1), type=pa.float32()), dim) \
            if dim else pa.array([], type=pa.list_(pa.float32(), 1))
        write_parquet(self.path, pa.table({"key": list(self.index), "vector": vectors}))
        self.changed = False


def cached_embed(cache: EmbeddingCache, keys: Sequence[str], texts: Sequence[str], embed, batch: int = 512,
                 log=None) -> int:
    """Embed the texts whose keys the cache lacks (``embed``: list of texts -> array); returns how many.
    The cache is saved after every batch, so an interrupted run keeps what it paid for. Texts go to the
    model shortest first: a model batch is padded to its longest text, so batches of like lengths waste
    little (sentence-transformers sorts within one call; this sorts across the calls too)."""
    todo = dict(zip(keys, texts))
    missing = sorted(cache.missing(keys), key=lambda key: len(todo[key]))
    for start in range(0, len(missing), batch):
        part = missing[start:start + batch]
        cache.add(part, embed([todo[k] for k in part]))
        cache.save()
        if log and len(missing) > batch:
            log(f"embedded {min(start + batch, len(missing))}/{len(missing)}")
    return len(missing)
