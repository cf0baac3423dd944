"""Embeddings: the packaged MiniLM for real, and the openai provider against a local server."""

import numpy as np

from reference_arch.common.embeddings import EmbeddingsResource
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
