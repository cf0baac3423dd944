"""Retrieval quality on evaluation question sets, each split into dev and test (``question_sets.py``).

For dense, keyword and hybrid search, and for a plain LangChain baseline (what a user would write:
``RecursiveCharacterTextSplitter`` at 1000/100 characters over the same documents, the same MiniLM
model, exact cosine in ``InMemoryVectorStore``), the asset records recall@k and MRR per set and per
part as numeric metadata, so the UI plots them run after run. The default mode of the question job
is the one with the best mean dev recall@k over the sets (``select_mode``); test figures are only
reported and judged. Questions whose answering documents are not indexed are not judged.

Multi-query retrieval (``multi_query.py``: LLM rewrites of each question searched with the chosen mode,
fused by reciprocal rank fusion) is scored beside the chosen mode with the ``llm`` resource's model (the
packaged instruct model offline), on a sample of dev questions (``multi_query_questions``, one LLM call each,
through the response cache: a rerun costs nothing); the metadata puts both modes' recall@k on the same
questions side by side. It is never chosen as the default:
it would make every question need the LLM.

The check ``retrieval_quality`` judges the chosen mode on the test parts: recall@k and MRR of the
pooled test questions at least the thresholds, and each set's test recall@k at least the baseline's.
With nothing to judge (a corpus of one's own and no question set for it) it passes and says so.
"""

import hashlib

import dagster as dg

from reference_arch.common.atomic import write_json
from reference_arch.common.llm.errors import LLMError
from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch.common.locations import asset_defaults
from reference_arch.common.metadata import table
from reference_arch.common.vector_store import SEARCH_MODES, VectorStoreResource
from reference_arch.rag.config import EVAL_SET_ENV, eval_set_paths
from reference_arch.rag.multi_query import (DEFAULT_REWRITES, MAX_REWRITES, MULTI_QUERY, llm_available,
                                            multi_query_retrieve)
from reference_arch.rag.defs.processing import AFTER_INGESTION, documents_path, read_rows
from reference_arch.rag.defs.index import open_collection, vector_index
from reference_arch.common.feedback_cases import REGRESSION_SET_NAME
from reference_arch.rag.feedback_set import with_feedback_set
from reference_arch.rag.question_sets import (MRR_DEPTH, SPLITS, QuestionSetError, answerable, document_names,
                                              first_rank, load_question_sets, sample_order, score, select_mode)
from reference_arch.rag.retrieval import CHUNKS_PER_SOURCE, DEFAULT_MODE, best_mode_path, retrieve

BASELINE = "langchain_baseline"
BASELINE_CHUNK_SIZE, BASELINE_CHUNK_OVERLAP = 1000, 100  # characters


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


def baseline_rankings(docs: list[dict], question_vectors, embeddings: EmbeddingsResource, k: int,
                      cache) -> tuple[list[list[str]], dict]:
    """Document rankings of the plain LangChain recipe (1000/100-character chunks, MiniLM, exact cosine)
    for the questions' vectors (the ones the project's modes use: each question is embedded once), and
    ``{"chunks": n, "embedded": m}``: the recipe's chunks are embedded through ``cache`` (by text hash),
    so a run embeds only text no earlier run embedded."""
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=BASELINE_CHUNK_SIZE, chunk_overlap=BASELINE_CHUNK_OVERLAP)
    texts, metadatas = [], []
    for doc in docs:
        for piece in splitter.split_text(doc["text"]):
            texts.append(piece)
            metadatas.append({"document_id": doc["id"]})
    keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    before = len(cache.missing(keys))
    store = InMemoryVectorStore(embedding=cached_langchain_embeddings(embeddings, cache))
    store.add_texts(texts, metadatas=metadatas)
    cache.keep_only(keys)
    cache.save()
    rankings = []
    for vector in question_vectors:
        ranked: list[str] = []
        hits = store.similarity_search_with_score_by_vector(list(map(float, vector)),
                                                            k=max(k, MRR_DEPTH) * CHUNKS_PER_SOURCE)
        for hit, _ in hits:
            if hit.metadata["document_id"] not in ranked:
                ranked.append(hit.metadata["document_id"])
        rankings.append(ranked)
    return rankings, {"chunks": len(texts), "embedded": before}


class EvaluationConfig(dg.Config):
    k: int = 5
    # Alarm thresholds on the chosen mode's pooled test recall@k and MRR, chosen on the dev parts: on the
    # default corpus (samples + the pandas API) pooled dev recall@5 is about 0.75 and MRR about 0.64
    # (bench/results/bench_rag_quality.json); the alarm sits about 0.1 below, outside run-to-run noise.
    min_recall: float = 0.65
    min_mrr: float = 0.5
    baseline: bool = True  # also score the plain LangChain recipe (embeds the corpus a second time, once)
    question_sets: list[str] = []  # YAML files; default: REFERENCE_ARCH_RAG_EVAL_SET, else rag/eval_sets/*.yaml
    # multi-query retrieval, scored beside the chosen mode with the llm resource's model (one LLM call per
    # question: the packaged CPU model takes seconds a call, so a sample of dev questions; 0 = every question,
    # dev and test)
    multi_query: bool = True
    multi_query_questions: int = 12
    multi_query_rewrites: int = DEFAULT_REWRITES


def evaluate(collection, docs: list[dict], sets: dict, embeddings: EmbeddingsResource, k: int,
             baseline_cache=None, llm=None, rewrites: int = DEFAULT_REWRITES, multi_query_questions: int = 0) -> dict:
    """Rankings and scores of every mode (and the baseline, given its embedding cache; and multi-query
    over the chosen mode, given an ``llm``, on the first ``multi_query_questions`` dev questions in
    ``sample_order``, all of them when 0) on the questions the index can answer.
    Returns ``{"judged": [(question, answering ids)], "rankings": {mode: [...]},
    "scores": {set: {split: {mode: score}}}, "best_mode", "mean_dev_recall": {mode: float},
    "baseline": {"chunks", "embedded"} (empty without the baseline), "multi_query": one line saying
    what it was searched over, why it was skipped, or the LLM error that failed it, "multi_query_compared":
    {best mode and multi_query: score on the sampled dev questions} (empty without it)}``. The best mode is
    one of ``SEARCH_MODES``."""
    names = document_names([d for d in docs if d["id"] in set(collection.chunk_ids().values())])
    judged = [(q, rel) for questions in sets.values() for q in questions if (rel := answerable(q, names))]
    texts = [q.question for q, _ in judged]
    depth = max(k, MRR_DEPTH)
    rankings: dict[str, list[list[str]]] = {}
    baseline: dict = {}
    if judged:
        vectors = embeddings.embed_array(texts)
        for mode in SEARCH_MODES:
            rankings[mode] = [[s["document_id"] for s in retrieve(collection, t, v, mode, depth)]
                              for t, v in zip(texts, vectors)]
        if baseline_cache is not None:
            rankings[BASELINE], baseline = baseline_rankings(docs, vectors, embeddings, k, baseline_cache)
    scored = [*SEARCH_MODES, *([BASELINE] if baseline_cache is not None else [])]
    scores: dict = {}
    for name in sets:
        scores[name] = {}
        for split in SPLITS:
            rows = [i for i, (q, _) in enumerate(judged) if q.set_name == name and q.split == split]
            scores[name][split] = {m: score([rankings[m][i] for i in rows], [judged[i][1] for i in rows], k)
                                   for m in scored}
    # ties go to the fallback default, then to the order of SEARCH_MODES
    candidates = [DEFAULT_MODE, *(m for m in SEARCH_MODES if m != DEFAULT_MODE)]
    # The feedback set is reported, never chosen on: its relevant documents are what the answering mode
    # retrieved, so that mode scores 1.0 on it by construction.
    best, mean = select_mode({n: s["dev"] for n, s in scores.items() if n != REGRESSION_SET_NAME}, candidates)
    sampled = (sorted((i for i, (q, _) in enumerate(judged) if q.split == "dev" and q.set_name != REGRESSION_SET_NAME),
                      key=lambda i: sample_order(judged[i][0]))[:multi_query_questions]
               if multi_query_questions else list(range(len(judged))))
    compared: dict = {}
    try:
        if llm is None or not llm_available(llm):
            multi = f"{MULTI_QUERY}: skipped (no LLM configured)"
        else:  # over the chosen mode, on a sample of dev questions (an LLM call each), so the two compare directly
            ranked: list = [None] * len(judged)
            for i in sampled:
                ranked[i] = [s["document_id"] for s in multi_query_retrieve(
                    collection, llm, texts[i], embeddings.embed_array, best, depth, rewrites)[0]]
            rankings[MULTI_QUERY] = ranked
            compared = {m: score([rankings[m][i] for i in sampled], [judged[i][1] for i in sampled], k)
                        for m in (best, MULTI_QUERY)} if sampled else {}
            multi = (f"{MULTI_QUERY}: {rewrites} rewrites per question by {llm.resolved_model()}, searched with {best} "
                     f"and fused by RRF, on {len(sampled)} {'dev ' if multi_query_questions else ''}questions: recall@{k} "
                     + (f"{compared[MULTI_QUERY]['recall']:.3f} against {best}'s {compared[best]['recall']:.3f} "
                        "on the same questions" if compared else "(none)"))
    except LLMError as err:  # an optional comparison: the modes' scores and the default still stand
        multi = f"{MULTI_QUERY}: failed ({err})"
        rankings.pop(MULTI_QUERY, None)
    if MULTI_QUERY in rankings:
        for name in sets:
            for split in SPLITS:
                rows = [i for i, (q, _) in enumerate(judged) if q.set_name == name and q.split == split
                        and rankings[MULTI_QUERY][i] is not None]
                if rows:
                    scores[name][split][MULTI_QUERY] = score([rankings[MULTI_QUERY][i] for i in rows],
                                                             [judged[i][1] for i in rows], k)
    return {"judged": judged, "rankings": rankings, "scores": scores, "best_mode": best, "mean_dev_recall": mean,
            "baseline": baseline, "multi_query": multi, "multi_query_compared": compared}


@dg.asset(
    **asset_defaults("rag"), kinds={"python", "langchain"},
    deps=[vector_index], automation_condition=AFTER_INGESTION,
    check_specs=[dg.AssetCheckSpec("retrieval_quality", asset=dg.AssetKey(["rag", "retrieval_evaluation"]),
                                   description="On the test parts of the question sets (the questions whose "
                                               "documents are indexed), the chosen mode reaches the recall@k and "
                                               "MRR thresholds and each set's recall@k is not below the plain "
                                               "LangChain baseline's.")],
    description="Dense, keyword and hybrid retrieval, and a plain LangChain baseline, scored on the dev and test "
                "parts of each question set (recall@k, MRR as numeric metadata), with multi-query retrieval on a "
                "sample of dev questions beside the chosen mode; the search mode with the best mean dev recall@k becomes the "
                "question job's default.",
)
def retrieval_evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig, embeddings: EmbeddingsResource,
                         vector_store: VectorStoreResource, llm: LLMResource):
    from reference_arch.rag.defs.processing import embedding_cache

    paths = config.question_sets or eval_set_paths()
    try:
        sets = with_feedback_set(load_question_sets(paths))  # + approved answers' questions, when any
    except QuestionSetError as err:
        raise dg.Failure(description=f"{err} (question sets come from run config question_sets or {EVAL_SET_ENV})")
    docs = read_rows(documents_path(), ["id", "format", "text"])
    if not 1 <= config.multi_query_rewrites <= MAX_REWRITES:
        raise dg.Failure(description=f"multi_query_rewrites must be 1 to {MAX_REWRITES} "
                                     f"(got {config.multi_query_rewrites})")
    result = evaluate(open_collection(embeddings, vector_store), docs, sets, embeddings, config.k,
                      embedding_cache(embeddings, "langchain_baseline") if config.baseline else None,
                      llm if config.multi_query else None, config.multi_query_rewrites, config.multi_query_questions)
    multi_query = result["multi_query"] if config.multi_query else f"{MULTI_QUERY}: off (run config multi_query)"
    (context.log.warning if multi_query.startswith(f"{MULTI_QUERY}: failed") else context.log.info)(multi_query)
    k, best, scores, judged = config.k, result["best_mode"], result["scores"], result["judged"]
    total = sum(len(q) for q in sets.values())
    selection = (", ".join(f"{m} {v:.3f}" for m, v in result["mean_dev_recall"].items())
                 if result["mean_dev_recall"] else "no judged dev questions")
    write_json(best_mode_path(), {  # atomically: question runs read it meanwhile (retrieval.default_mode)
        "best_mode": best, "k": k, "chosen_by": f"mean dev recall@{k} over {len(sets)} sets",
        "mean_dev_recall": result["mean_dev_recall"], "scores": scores})

    metadata: dict = {"questions": total, "judged": len(judged), "best_mode": best, "k": k,
                      "selection": dg.MetadataValue.text(f"mean dev recall@{k} over the sets: {selection} -> {best}"),
                      "question_sets": dg.MetadataValue.text(", ".join(str(p) for p in paths)),
                      "multi_query": dg.MetadataValue.text(multi_query),
                      **({f"multi_query_{key.split('/', 1)[1]}": v for key, v in llm.usage_metadata().items()
                          if key in ("llm/calls", "llm/cache_hits", "llm/cost_usd")}
                         if MULTI_QUERY in result["rankings"] else {}),
                      **{f"baseline_{key}": v for key, v in result["baseline"].items()},
                      **{f"multi_query_sample/{m}/recall@{k}": round(s["recall"], 4)
                         for m, s in result["multi_query_compared"].items()}}
    summary = []
    for name, parts in scores.items():
        for split, by_mode in parts.items():
            n = next(iter(by_mode.values()))["questions"]
            metadata[f"{name}/{split}/judged"] = n
            for mode, s in by_mode.items():
                metadata[f"{name}/{split}/{mode}/recall@{k}"] = round(s["recall"], 4)
                metadata[f"{name}/{split}/{mode}/mrr"] = round(s["mrr"], 4)
            base = by_mode.get(BASELINE)
            summary.append({
                "set": name, "part": split, "judged": n, f"{best} recall@{k}": round(by_mode[best]["recall"], 4),
                f"{best} mrr": round(by_mode[best]["mrr"], 4),
                f"baseline recall@{k}": round(base["recall"], 4) if base else None,
                "baseline mrr": round(base["mrr"], 4) if base else None})
    metadata["summary"] = table(summary, ["set", "part", ("judged", "int"), *(
        (c, "float") for c in (f"{best} recall@{k}", f"{best} mrr", f"baseline recall@{k}", "baseline mrr"))])
    rankings = result["rankings"]
    metadata["per_question"] = table(
        [{"set": q.set_name, "id": q.id, "part": q.split, "question": q.question, "relevant": ", ".join(rel),
          **{m: first_rank(rankings[m][i], rel) if rankings[m][i] is not None else None for m in rankings}}
         for i, (q, rel) in enumerate(judged)],
        ["set", "id", "part", "question", "relevant", *((m, "int") for m in rankings)])
    yield dg.MaterializeResult(metadata=metadata)
    yield quality_check(result, config, total)


def quality_check(result: dict, config: EvaluationConfig, total: int) -> dg.AssetCheckResult:
    """The chosen mode on the pooled test questions against the thresholds, and per set against the baseline."""
    k, best = config.k, result["best_mode"]
    test = [(i, rel) for i, (q, rel) in enumerate(result["judged"])
            if q.split == "test" and q.set_name != REGRESSION_SET_NAME]  # the feedback set is reported only
    if not test:
        # Not a pass: a trial with its own docs saw the check green though nothing was measured. A warning,
        # not an error: an index of the user's own documents is valid before they write questions for it.
        return dg.AssetCheckResult(
            check_name="retrieval_quality", passed=False, severity=dg.AssetCheckSeverity.WARN,
            metadata={"questions": total, "judged_test": 0},
            description=(f"nothing to judge: none of the {total} test and dev questions' documents are indexed"
                         if not result["judged"] else "nothing to judge: no test question's documents are indexed")
            + "; write questions about your documents (REFERENCE_ARCH_RAG_EVAL_SET) to measure retrieval")
    pooled = score([result["rankings"][best][i] for i, _ in test], [rel for _, rel in test], k)
    failures = []
    if pooled["recall"] < config.min_recall:
        failures.append(f"test recall@{k} {pooled['recall']:.3f} < {config.min_recall}")
    if pooled["mrr"] < config.min_mrr:
        failures.append(f"test MRR {pooled['mrr']:.3f} < {config.min_mrr}")
    for name, parts in result["scores"].items():
        if name == REGRESSION_SET_NAME:
            continue
        ours, base = parts["test"][best], parts["test"].get(BASELINE)
        if base and ours["questions"] and ours["recall"] < base["recall"]:
            failures.append(f"{name}: test recall@{k} {ours['recall']:.3f} below the LangChain baseline's "
                            f"{base['recall']:.3f}")
    return dg.AssetCheckResult(
        check_name="retrieval_quality", passed=not failures,
        description="; ".join(failures) or f"{best} on {len(test)} test questions: recall@{k} "
                                            f"{pooled['recall']:.3f}, MRR {pooled['mrr']:.3f}, not below the baseline",
        metadata={"best_mode": best, "questions": total, "judged": len(result["judged"]), "judged_test": len(test),
                  f"test_recall@{k}": round(pooled["recall"], 4), "test_mrr": round(pooled["mrr"], 4),
                  "min_recall": config.min_recall, "min_mrr": config.min_mrr})
