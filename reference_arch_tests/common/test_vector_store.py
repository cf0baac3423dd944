"""The vector store: the real LanceDB under a temporary home, and Weaviate through the real
weaviate-client against a local server speaking its REST and gRPC APIs (``weaviate_server``),
or against a real Weaviate when WEAVIATE_URL is set.

The same contract runs against both backends: atomic per-document replace, delete by document,
dense/keyword/hybrid search, counts, and a collection that records the embedding model and
dimension of its vectors: refused to another model, rebuilt for it by the index's writer.
"""

import multiprocessing
import os

import numpy as np
import pytest

from reference_arch.common.vector_store import (
    Embedding,
    EmbeddingMismatchError,
    VectorStoreError,
    VectorStoreResource,
    vector_store_resource,
)
from reference_arch_tests.weaviate_server import FakeWeaviate

DIM = 8
TEXTS = {
    "a": ["rename the index labels of a series", "apples and oranges in a fruit basket"],
    "b": ["banana bread recipe with walnuts"],
    "c": ["configure the cache directory with an environment variable"],
}


def vector(seed: int) -> list[float]:
    v = np.random.default_rng(seed).normal(size=DIM)
    return (v / np.linalg.norm(v)).tolist()


def record(doc: str, i: int, text: str, seed: int | None = None) -> dict:
    return {"id": f"{doc}#{i}", "document_id": doc, "source_type": "docs" if doc != "c" else "slack",
            "source": f"{doc}.md", "title": doc.upper(), "url": "", "text": text, "created_at": "", "updated_at": "",
            "vector": vector(seed if seed is not None else hash((doc, i)) % 1000)}


def fill(collection) -> None:
    for doc, texts in TEXTS.items():
        collection.replace_documents([doc], [record(doc, i, t, seed=10 * ord(doc) + i) for i, t in enumerate(texts)])


def contract(collection) -> None:
    fill(collection)
    assert collection.count() == 4
    assert collection.count_by("source_type") == {"docs": 3, "slack": 1}
    assert collection.chunk_ids() == {"a#0": "a", "a#1": "a", "b#0": "b", "c#0": "c"}

    # Dense: a document's own vector ranks it first, with cosine similarity ~1.
    hits = collection.search(vector(10 * ord("b")), k=2)
    assert hits[0]["id"] == "b#0" and hits[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert hits[0]["text"] == TEXTS["b"][0] and hits[0]["title"] == "B"
    # Keyword and hybrid find the words.
    assert collection.keyword_search("banana walnuts", k=2)[0]["id"] == "b#0"
    assert collection.hybrid_search("cache directory", vector(10 * ord("c")), k=3)[0]["id"] == "c#0"
    assert collection.query("keyword", "", None, 3) == []

    # Replace: a#0 kept (unchanged), a#1 dropped, a#2 added; other documents untouched.
    collection.replace_documents(["a"], [record("a", 2, "a new paragraph about labels")], keep_ids=["a#0"])
    assert collection.chunk_ids() == {"a#0": "a", "a#2": "a", "b#0": "b", "c#0": "c"}
    # Idempotent: the same replace again changes nothing.
    collection.replace_documents(["a"], [record("a", 2, "a new paragraph about labels")], keep_ids=["a#0"])
    assert collection.count() == 4
    # A document whose chunks all went stale, and deletion by document.
    collection.replace_documents(["b"], [])
    assert "b#0" not in collection.chunk_ids()
    assert collection.delete_documents(["c"]) in (0, 1)  # LanceDB may not report the count
    assert collection.chunk_ids() == {"a#0": "a", "a#2": "a"}

    with pytest.raises(VectorStoreError, match="dimensional"):
        collection.replace_documents(["x"], [{**record("x", 0, "x"), "vector": [0.1] * (DIM + 1)}])
    with pytest.raises(VectorStoreError, match="unknown search mode"):
        collection.query("fuzzy", "x", vector(1), 3)


def test_lancedb_contract(tmp_home):
    store = VectorStoreResource()
    assert store.resolved_backend() == "lancedb" and store.location().startswith(str(tmp_home))
    contract(store.collection("chunks", "sentence-transformers/all-MiniLM-L6-v2", DIM))


def embedding_record_contract(store: VectorStoreResource) -> None:
    """A collection records its embedding model and dimension, refuses another model, and is rebuilt
    (not mixed) when its writer opens it for another model."""
    assert store.recorded_embedding("chunks") is None
    reader = store.collection("chunks", "model-a")  # no dimension: a reader of what is there
    assert reader.count() == 0 and reader.search(vector(1)) == [] and reader.chunk_ids() == {}
    assert store.recorded_embedding("chunks") is None  # reading creates nothing

    first = store.collection("chunks", "model-a", DIM)
    first.replace_documents(["a"], [record("a", 0, "hello")])
    assert store.recorded_embedding("chunks") == Embedding("model-a", DIM)
    reader = store.collection("chunks", "model-a")
    assert reader.count() == 1 and reader.dimension == DIM  # the recorded dimension

    for model, dimension in (("model-b", None), ("model-b", DIM), ("model-a", DIM * 2)):
        other = store.collection("chunks", model, dimension)
        with pytest.raises(EmbeddingMismatchError, match="holds vectors of embedding model model-a") as refused:
            other.count()
        assert refused.value.recorded == Embedding("model-a", DIM) and refused.value.wanted.model == model
        assert "\n" not in str(refused.value)
    assert store.collection("chunks", "model-a").count() == 1  # refusals lose nothing

    rebuilt = store.collection("chunks", "model-b", DIM * 2, rebuild=True)
    assert rebuilt.count() == 0 and rebuilt.rebuilt_from == Embedding("model-a", DIM)
    rebuilt.replace_documents(["b"], [{**record("b", 0, "bye"), "vector": [0.5] * (DIM * 2)}])
    assert store.recorded_embedding("chunks") == Embedding("model-b", DIM * 2)
    assert store.collection("chunks", "model-b").chunk_ids() == {"b#0": "b"}
    again = store.collection("chunks", "model-b", DIM * 2, rebuild=True)
    assert again.count() == 1 and again.rebuilt_from is None  # the same model: nothing rebuilt


def test_lancedb_collection_records_its_embedding(tmp_home):
    embedding_record_contract(VectorStoreResource())


def test_backend_selection(tmp_home, monkeypatch):
    assert VectorStoreResource(backend="weaviate", url="http://localhost:1").resolved_backend() == "weaviate"
    monkeypatch.setenv("WEAVIATE_URL", "http://localhost:1")
    assert VectorStoreResource().resolved_backend() == "weaviate"
    with pytest.raises(VectorStoreError, match="unknown vector store backend"):
        VectorStoreResource(backend="faiss").resolved_backend()


def test_ann_index_is_built_only_when_the_table_is_large(tmp_home):
    store = VectorStoreResource(ann_min_rows=300, ann_index_type="IVF_PQ")
    collection = store.collection("chunks", "m", DIM)
    rng = np.random.default_rng(0)
    rows = [{**record(f"d{i}", 0, f"text {i}"), "vector": (v / np.linalg.norm(v)).tolist()}
            for i, v in enumerate(rng.normal(size=(299, DIM)))]
    collection.replace_documents([r["document_id"] for r in rows], rows)
    assert "vector" not in collection.optimize()["index_types"]  # 299 rows: exact search
    extra = {**record("d299", 0, "text 299"), "vector": vector(299)}
    collection.replace_documents(["d299"], [extra])
    done = collection.optimize()
    assert done["ann_index"] == "IVF_PQ" and "vector" in done["index_types"]
    assert collection.search(vector(299), k=1)[0]["id"] == "d299#0"  # refined by exact distances


def _write_documents(uri: str, docs: list[str]) -> None:
    store = VectorStoreResource(uri=uri)
    collection = store.collection("chunks", "m", DIM)
    for doc in docs:
        collection.replace_documents([doc], [record(doc, i, f"{doc} {i}") for i in range(3)])


def test_concurrent_writers_lose_nothing(tmp_home):
    """Two processes replacing different documents at once: every chunk of both lands."""
    uri = str(tmp_home / "lancedb")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_documents, args=(uri, [f"{w}-{i}" for i in range(8)])) for w in "xy"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    collection = VectorStoreResource(uri=uri).collection("chunks", "m", DIM)
    assert collection.count() == 2 * 8 * 3 == len(collection.chunk_ids())


@pytest.mark.skipif(not os.environ.get("WEAVIATE_URL"), reason="no Weaviate server: set WEAVIATE_URL (and WEAVIATE_API_KEY if it needs one) to run this test "
                           "against a real Weaviate (the in-process weaviate_server.py tests cover its API meanwhile)")
def test_weaviate_contract():
    import uuid

    store = VectorStoreResource(backend="weaviate", url=os.environ["WEAVIATE_URL"])
    collection = store.collection(f"test_{uuid.uuid4().hex[:8]}", "m", DIM)
    try:
        contract(collection)
    finally:
        collection._connect().collections.delete(collection.name)
        collection.close()


@pytest.fixture
def weaviate_server(monkeypatch):
    """A local Weaviate (REST + gRPC on free loopback ports), no key in the environment."""
    for name in ("WEAVIATE_URL", "WEAVIATE_API_KEY", "WEAVIATE_GRPC_PORT"):
        monkeypatch.delenv(name, raising=False)
    with FakeWeaviate() as server:
        yield server


def weaviate_collection(server: FakeWeaviate, **settings):
    store = VectorStoreResource(backend="weaviate", url=server.url, grpc_port=server.grpc_port, **settings)
    return store.collection("chunks", "m", DIM)


def test_weaviate_contract_on_a_local_server(weaviate_server):
    collection = weaviate_collection(weaviate_server)
    try:
        contract(collection)
        assert collection.count_by("id") == {"a#0": 1, "a#2": 1}
        with pytest.raises(VectorStoreError, match="unknown field"):
            collection.count_by("colour")
    finally:
        collection.close()
    # Schema over REST, data over gRPC: the paths the real client takes, nothing left unimplemented.
    calls = weaviate_server.calls
    assert calls["POST /v1/schema"] == 1
    assert all(calls[f"grpc {rpc}"] for rpc in ("BatchObjects", "BatchDelete", "Search", "Aggregate"))
    assert not [call for call in calls if "objects" in call or "graphql" in call]


def test_weaviate_collection_records_its_embedding(weaviate_server):
    store = VectorStoreResource(backend="weaviate", url=weaviate_server.url, grpc_port=weaviate_server.grpc_port)
    embedding_record_contract(store)
    assert weaviate_server.calls["DELETE /v1/schema/Chunks"] == 1  # the rebuild dropped the old collection


def test_weaviate_deletes_past_query_maximum_results(weaviate_server):
    """One query pages through at most QUERY_MAXIMUM_RESULTS objects and one batch delete removes
    at most that many: replacing and deleting documents with more chunks than that still works."""
    weaviate_server.max_results = 1000
    collection = weaviate_collection(weaviate_server)
    try:
        big = {doc: [record(doc, i, f"{doc} part {i}", seed=i) for i in range(600)] for doc in ("x", "y")}
        collection.replace_documents(["x", "y"], big["x"] + big["y"])
        collection.replace_documents(["x", "y"], big["x"][:1] + big["y"][:1])  # 1198 stale chunks go
        assert collection.chunk_ids() == {"x#0": "x", "y#0": "y"}
        collection.replace_documents(["x", "y"], big["x"] + big["y"])
        assert collection.delete_documents(["x", "y"]) == 1200 and collection.count() == 0
    finally:
        collection.close()


def test_weaviate_sends_the_api_key(monkeypatch):
    for name in ("WEAVIATE_URL", "WEAVIATE_API_KEY", "WEAVIATE_GRPC_PORT"):
        monkeypatch.delenv(name, raising=False)
    with FakeWeaviate(api_key="s3cret-key") as server:
        # Accepted over REST (schema) and gRPC (batch, aggregate).
        collection = weaviate_collection(server, api_key="s3cret-key")
        collection.replace_documents(["a"], [record("a", 0, "hello")])
        assert collection.count() == 1
        collection.close()
        for key, message in (("wrong-key", "refused the API key"), (None, "needs an API key")):
            collection = weaviate_collection(server, api_key=key)
            with pytest.raises(VectorStoreError, match=message) as error:
                collection.count()
            assert "s3cret" not in str(error.value) and "wrong-key" not in str(error.value)
            assert error.value.__cause__ is None and error.value.__suppress_context__
        # From the environment: WEAVIATE_API_KEY as an EnvVar, used inside or outside a Dagster run.
        monkeypatch.setenv("WEAVIATE_API_KEY", "s3cret-key")
        store = vector_store_resource(url=server.url, grpc_port=server.grpc_port)
        for resource in (store, store.process_config_and_initialize()):
            collection = resource.collection("chunks", "m", DIM)
            assert collection.count() == 1
            collection.close()


def test_local_weaviate_computes_and_refuses(weaviate_server):
    """The stand-in answers from its data (cosine distances as Weaviate reports them) and refuses
    loudly what it does not implement, instead of answering something plausible."""
    from weaviate.classes.query import MetadataQuery, Sort
    from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateQueryError

    collection = weaviate_collection(weaviate_server)
    try:
        fill(collection)
        handle, query = collection.collection(), np.asarray(vector(7))
        hits = handle.query.near_vector(query.tolist(), limit=4, include_vector=True,
                                        return_metadata=MetadataQuery(distance=True)).objects
        expected = [1 - float(np.dot(query, v) / np.linalg.norm(v)) for v in (o.vector["default"] for o in hits)]
        assert [o.metadata.distance for o in hits] == pytest.approx(sorted(expected), abs=1e-5)
        with pytest.raises(WeaviateQueryError, match="sort_by not implemented"):
            handle.query.fetch_objects(sort=Sort.by_property("title"))
        with pytest.raises(UnexpectedStatusCodeError, match="501"):
            handle.data.insert(properties={"text": "x"}, vector=vector(1))  # REST /v1/objects
    finally:
        collection.close()
