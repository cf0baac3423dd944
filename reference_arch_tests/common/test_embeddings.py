"""Embeddings: the packaged MiniLM for real, and the openai provider against a local server."""

import numpy as np
import pytest

from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch_tests.fake_openai import FakeOpenAI


def test_local_minilm_is_normalised_and_semantic(tmp_home):
    emb = EmbeddingsResource(provider="local", batch_size=2)
    vectors = np.array(emb.embed_documents([
        "How do I rename the index of a Series?",
        "Series.rename alters the index labels of a pandas Series.",
        "The training loss of the model went down after warmup.",
    ]))
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert emb.max_tokens() == 256 and emb.model_label() == "sentence-transformers/all-MiniLM-L6-v2"
    lc = emb.as_langchain()
    assert np.allclose(lc.embed_query("How do I rename the index of a Series?"), vectors[0], atol=1e-5)


def test_openai_embeddings_are_batched_and_normalised(tmp_home):
    with FakeOpenAI() as server:
        emb = EmbeddingsResource(provider="openai", base_url=server.base_url, api_key="k", batch_size=2)
        vectors = emb.embed_documents(["a", "bbb", "cc"])
    assert len(server.requests) == 2  # batches of two
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert emb.resolved_model() == "text-embedding-3-small"


def test_only_the_embeddings_switch_changes_the_provider(tmp_home, monkeypatch):
    """OPENAI_API_KEY (the README's advice for real answers) switches the LLM, not the embeddings:
    the index stays built and queried with MiniLM until REFERENCE_ARCH_EMBEDDINGS_PROVIDER=openai."""
    from reference_arch.common.resources import embeddings_resource, llm_resource

    monkeypatch.delenv("REFERENCE_ARCH_EMBEDDINGS_PROVIDER", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert llm_resource().resolved_provider() == "openai"
    local = embeddings_resource()
    assert local.resolved_provider() == "local" and local.model_label() == "sentence-transformers/all-MiniLM-L6-v2"
    assert EmbeddingsResource(api_key="sk-test").resolved_provider() == "local"
    monkeypatch.setenv("REFERENCE_ARCH_EMBEDDINGS_PROVIDER", "openai")
    switched = embeddings_resource()
    assert switched.resolved_provider() == "openai" and switched.model_label() == "text-embedding-3-small"
    with pytest.raises(ValueError, match="unknown embeddings provider 'cohere'"):
        EmbeddingsResource(provider="cohere").resolved_provider()
