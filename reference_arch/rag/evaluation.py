"""Retrieval quality on the evaluation set shipped in the repo (``eval_set.yaml``).

Each question lists the ids of the documents that answer it. For dense, keyword and hybrid search,
and for a plain LangChain baseline (``RecursiveCharacterTextSplitter`` at its defaults-like 1000/200
characters, the same MiniLM model, exact cosine in ``InMemoryVectorStore``, over the same documents),
the asset records recall@k (the share of a question's answering documents found in the top k
sources) and MRR (the mean reciprocal rank of the first answering document within the top 10) as
numeric metadata, so the UI plots them run after run. Its check fails when the best mode falls below
the thresholds or does not beat the baseline. The best mode becomes the question job's default.
"""

import hashlib
import json

import dagster as dg

from reference_arch.common.embeddings import EmbeddingsResource
from reference_arch.common.locations import OWNERS
from reference_arch.common.vector_store import SEARCH_MODES, VectorStoreResource
from reference_arch.rag.config import eval_set_path
from reference_arch.rag.processing import AFTER_INGESTION, documents_path, open_collection, read_rows, vector_index
from reference_arch.rag.retrieval import CHUNKS_PER_SOURCE, best_mode_path, retrieve

MRR_DEPTH = 10
BASELINE = "langchain_baseline"


def load_eval_set(path=None) -> list[dict]:
    import yaml

    path = path or eval_set_path()
    if not path.is_file():
        raise dg.Failure(description=f"evaluation set not found: {path} (set REFERENCE_ARCH_RAG_EVAL_SET)")
    items = yaml.safe_load(path.read_text())["questions"]
    for item in items:
        if not item.get("question") or not item.get("relevant"):
            raise dg.Failure(description=f"{path}: every entry needs a question and the ids of the documents "
                                         f"that answer it: {item}")
    return items


def score(rankings: list[list[str]], relevant: list[list[str]], k: int) -> dict:
    """Mean recall@k, MRR (first relevant document within ``MRR_DEPTH``) and hit rate@k."""
    recalls, reciprocal, hits = [], [], []
    for ranked, wanted in zip(rankings, relevant):
        wanted = set(wanted)
        top = ranked[:k]
        recalls.append(len(wanted & set(top)) / len(wanted))
        hits.append(1.0 if wanted & set(top) else 0.0)
        first = next((i for i, doc in enumerate(ranked[:MRR_DEPTH], 1) if doc in wanted), None)
        reciprocal.append(1.0 / first if first else 0.0)
    n = max(1, len(rankings))
    return {"recall": sum(recalls) / n, "mrr": sum(reciprocal) / n, "hit_rate": sum(hits) / n}


def cached_langchain_embeddings(embeddings: EmbeddingsResource, cache):
    """The embeddings resource as LangChain ``Embeddings``, through an embedding cache."""
    from langchain_core.embeddings import Embeddings

    from reference_arch.rag.embedding_cache import cached_embed

    class CachedEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
            cached_embed(cache, keys, texts, embeddings.embed_array)
            return cache.vectors(keys).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embeddings.embed_query(text)

    return CachedEmbeddings()


def baseline_rankings(docs: list[dict], questions: list[str], embeddings: EmbeddingsResource, k: int,
                      cache) -> list[list[str]]:
    """What a user would build with LangChain's defaults: character chunks, MiniLM, exact cosine."""
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    texts, metadatas = [], []
    for doc in docs:
        for piece in splitter.split_text(doc["text"]):
            texts.append(piece)
            metadatas.append({"document_id": doc["id"]})
    store = InMemoryVectorStore(embedding=cached_langchain_embeddings(embeddings, cache))
    store.add_texts(texts, metadatas=metadatas)
    cache.keep_only(hashlib.sha256(t.encode()).hexdigest() for t in texts)
    cache.save()
    rankings = []
    for question in questions:
        ranked: list[str] = []
        for hit, _ in store.similarity_search_with_score(question, k=max(k, MRR_DEPTH) * CHUNKS_PER_SOURCE):
            if hit.metadata["document_id"] not in ranked:
                ranked.append(hit.metadata["document_id"])
        rankings.append(ranked)
    return rankings


class EvaluationConfig(dg.Config):
    k: int = 5
    min_recall: float = 0.8  # recall@k of the best mode (0.97 on the shipped set with MiniLM)
    min_mrr: float = 0.7  # (0.95 on the shipped set)
    baseline: bool = True  # also score the plain LangChain recipe (embeds the corpus a second time, once)


@dg.asset(
    key=["rag", "retrieval_evaluation"], group_name="rag", owners=OWNERS, kinds={"python", "langchain"},
    deps=[vector_index], automation_condition=AFTER_INGESTION,
    check_specs=[dg.AssetCheckSpec("retrieval_quality", asset=dg.AssetKey(["rag", "retrieval_evaluation"]),
                                   description="The best retrieval mode reaches the recall@k and MRR thresholds "
                                               "and beats the plain LangChain baseline.")],
    description="Dense, keyword and hybrid retrieval, and a plain LangChain baseline, scored on the evaluation "
                "set (recall@k, MRR as numeric metadata); the best mode becomes the question job's default.",
)
def retrieval_evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig, embeddings: EmbeddingsResource,
                         vector_store: VectorStoreResource):
    from reference_arch.rag.processing import embedding_cache

    items = load_eval_set()
    questions = [item["question"] for item in items]
    relevant = [item["relevant"] for item in items]
    collection = open_collection(embeddings, vector_store)
    vectors = embeddings.embed_array(questions)
    depth = max(config.k, MRR_DEPTH)
    results, rankings = {}, {}
    for mode in SEARCH_MODES:
        rankings[mode] = [[s["document_id"] for s in retrieve(collection, q, v, mode, depth)]
                          for q, v in zip(questions, vectors)]
        results[mode] = score(rankings[mode], relevant, config.k)
    best = max(SEARCH_MODES, key=lambda m: (results[m]["recall"] + results[m]["mrr"], m == "hybrid"))
    if config.baseline:
        docs = read_rows(documents_path(), ["id", "text"])
        rankings[BASELINE] = baseline_rankings(docs, questions, embeddings, config.k,
                                               embedding_cache(embeddings, "langchain_baseline"))
        results[BASELINE] = score(rankings[BASELINE], relevant, config.k)
    best_mode_path().write_text(json.dumps({"best_mode": best, "k": config.k, "results": results}, indent=2))

    metadata: dict = {"questions": len(items), "best_mode": best, "k": config.k}
    for name, result in results.items():
        metadata[f"{name}/recall@{config.k}"] = round(result["recall"], 4)
        metadata[f"{name}/mrr"] = round(result["mrr"], 4)
        metadata[f"{name}/hit_rate@{config.k}"] = round(result["hit_rate"], 4)
    metadata["per_question"] = dg.MetadataValue.table(
        records=[dg.TableRecord({
            "question": q, "relevant": ", ".join(rel),
            **{m: _first_rank(rankings[m][i], rel) for m in rankings},
        }) for i, (q, rel) in enumerate(zip(questions, relevant))],
        schema=dg.TableSchema(columns=[dg.TableColumn("question", "string"), dg.TableColumn("relevant", "string"),
                                       *(dg.TableColumn(m, "int") for m in rankings)]))
    yield dg.MaterializeResult(metadata=metadata)

    best_result = results[best]
    failures = []
    if best_result["recall"] < config.min_recall:
        failures.append(f"recall@{config.k} {best_result['recall']:.3f} < {config.min_recall}")
    if best_result["mrr"] < config.min_mrr:
        failures.append(f"MRR {best_result['mrr']:.3f} < {config.min_mrr}")
    if BASELINE in results and not _beats(best_result, results[BASELINE]):
        failures.append(f"does not beat the LangChain baseline (recall {results[BASELINE]['recall']:.3f}, "
                        f"MRR {results[BASELINE]['mrr']:.3f})")
    yield dg.AssetCheckResult(
        check_name="retrieval_quality", passed=not failures,
        description="; ".join(failures) or f"{best}: recall@{config.k} and MRR above thresholds and the baseline",
        metadata={"best_mode": best, f"recall@{config.k}": round(best_result["recall"], 4),
                  "mrr": round(best_result["mrr"], 4), "min_recall": config.min_recall, "min_mrr": config.min_mrr,
                  **({f"baseline_recall@{config.k}": round(results[BASELINE]["recall"], 4),
                      "baseline_mrr": round(results[BASELINE]["mrr"], 4)} if BASELINE in results else {})},
    )


def _beats(ours: dict, baseline: dict) -> bool:
    """Higher on one of recall and MRR and not lower on the other (a perfect score cannot be beaten, only
    matched: on a tiny or easy set both may reach 1.0)."""
    if ours["recall"] < baseline["recall"] or ours["mrr"] < baseline["mrr"]:
        return False
    perfect = ours["recall"] == ours["mrr"] == 1.0
    return perfect or ours["recall"] > baseline["recall"] or ours["mrr"] > baseline["mrr"]


def _first_rank(ranked: list[str], relevant: list[str]) -> int:
    """Rank of the first answering document (0: not in the top ``MRR_DEPTH``)."""
    return next((i for i, doc in enumerate(ranked[:MRR_DEPTH], 1) if doc in set(relevant)), 0)
