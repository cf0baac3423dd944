"""``rag_question_job``: retrieve sources for a question and answer it with citations.

``rag/question`` (run config) -> ``rag/retrieved_sources`` (top-k source documents, by default with
the retrieval mode that scored best on the evaluation set; mode ``multi_query`` searches LLM rewrites
of the question too and fuses the results, ``multi_query.py``) -> ``rag/answer``.

The answer is *generative* with an OpenAI-compatible LLM (``OPENAI_API_KEY`` or ``OPENAI_BASE_URL``): the
prompt (``common/grounded_prompt.py``) keeps the instructions (system message) apart from the sources, which
are numbered, fenced and marked as data so text inside them cannot pose as instructions; the model cites them
as [1], [2]. With the packaged local model it is *extractive* (``common/extractive.py``): the sources'
sentences that best answer the question, each cited [n], grounded by construction where the 135M model's
generated answers are not (``resolve_answerer``; ``bench/bench_llm.py`` measures both). ``REFERENCE_ARCH_RAG_ANSWERER`` (or the asset's ``answerer``
config) picks either explicitly (``generative`` offline: the packaged model).
The fence's tag is derived from the sources' text (``untrusted_text.fence_tag``), so no source can
close it early.
"""

import re
import time
from typing import Optional

import dagster as dg

from reference_arch.common.grounded_prompt import build_messages, citations
from reference_arch.common.vector_store.embeddings import EmbeddingsError, EmbeddingsResource
from reference_arch.common.llm.errors import LLMError
from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.locations import asset_defaults
from reference_arch.common.questions import (REGISTRY_MODELS, Question, QuestionConfig, accept_question,
                                             answer_record, markdown_text, record_metadata, require_answer,
                                             sources_table)
from reference_arch.common.vector_store import SEARCH_MODES, VectorStoreError, VectorStoreResource
from reference_arch.rag.defs.evaluation import retrieval_evaluation
from reference_arch.rag.defs.index import vector_index
from reference_arch.rag.multi_query import MULTI_QUERY

ANSWERER_ENV = "REFERENCE_ARCH_RAG_ANSWERER"
ANSWERERS = ("extractive", "generative")
# What RetrievalConfig accepts (and `reference-arch ask rag --mode/--k` offers): the modes and the most sources.
RETRIEVAL_MODES = (*SEARCH_MODES, MULTI_QUERY)
MAX_K = 50


class RagQuestion(QuestionConfig):
    question: str = "How do I rename the index of a Series?"


class RetrievalConfig(dg.Config):
    k: int = 5
    # dense | keyword | hybrid | multi_query; unset: the best on the evaluation set (never multi_query)
    mode: Optional[str] = None
    # multi_query only (rag/multi_query.py; needs an OpenAI-compatible LLM): the rewrites asked for, the
    # mode each version is searched with (unset: the best on the evaluation set), an LLM re-ranking
    rewrites: int = 3
    base_mode: Optional[str] = None
    rerank: bool = False


class AnswerConfig(dg.Config):
    # extractive | generative; unset: REFERENCE_ARCH_RAG_ANSWERER, else as resolve_answerer chooses
    answerer: Optional[str] = None


def resolve_answerer(configured: Optional[str], llm: LLMResource) -> str:
    """``configured``, else ``REFERENCE_ARCH_RAG_ANSWERER``, else generative with an OpenAI-compatible model,
    the packaged model's measured choice (``PackagedModel.rag_answerer``), or extractive for other local models."""
    from reference_arch.common.llm.packaged import defaults_for
    from reference_arch.common.settings import SettingsError, value

    try:
        chosen = configured or value("rag_answerer")
    except SettingsError as err:  # one line naming the variable, the value and the choices
        raise dg.Failure(description=str(err)) from None
    packaged = defaults_for(llm.resolved_model()) if llm.resolved_provider() == "local" else None
    choice = chosen or (
        "generative" if llm.resolved_provider() == "openai" else packaged.rag_answerer if packaged else "extractive")
    if choice not in ANSWERERS:
        raise dg.Failure(description=f"unknown answerer {choice!r} (answerer config or {ANSWERER_ENV}): "
                                     f"use {' or '.join(ANSWERERS)}")
    return choice


def compose_answer(question: str, sources: list[dict], answerer: str, llm: LLMResource,
                   embeddings: EmbeddingsResource, routing: Optional[dict] = None) -> tuple[str, str, dict, dict]:
    """``(answer text, model, usage, metadata)`` for a question and its retrieved sources, with ``answerer``
    (``resolve_answerer``): what ``rag/answer`` and ``rag/answer_quality`` both answer with. ``routing``:
    ``model``/``policy`` for the generative answer. Raises ``dg.Failure`` (one line) when the LLM fails."""
    if answerer == "extractive":
        from reference_arch.common.extractive import extractive_answer, label

        started = time.perf_counter()
        text, quoted = extractive_answer(question, sources, embeddings.embed_array)
        model = label(embeddings.model_label())
        usage = {"provider": "extractive", "model": model, "calls": 0, "cache_hits": 0, "prompt_tokens": 0,
                 "completion_tokens": 0, "latency_ms": round(1000 * (time.perf_counter() - started), 1)}
        return text, model, usage, {"answerer": "extractive", "model": model, "sentences": len(quoted),
                                    "latency_ms": usage["latency_ms"]}
    try:
        text = llm.generate(build_messages(question, sources), **(routing or {}))
    except LLMError as err:
        raise dg.Failure(description=str(err)) from None
    usage = llm.usage()
    # the routed model (common/llm/routing.py)
    return text, usage["model"], usage, {"answerer": "generative", **llm.usage_metadata()}


@dg.asset(**asset_defaults("rag"), kinds={"python"},
          description="The user's question, from run config; refused here if empty or over the length limit.")
def question(context: dg.AssetExecutionContext, config: RagQuestion) -> Question:
    return accept_question(context, config)


@dg.asset(
    **asset_defaults("rag"), kinds={"lancedb", "weaviate"},
    ins={"question": dg.AssetIn(key=["rag", "question"])}, deps=[vector_index, retrieval_evaluation],
    description="The top-k source documents for the question (their retrieved chunks), best first, with the mode and "
                "k they were retrieved with; with mode multi_query, fused over LLM rewrites of the question (the "
                "rewrites and what each found in metadata).",
)
def retrieved_sources(context: dg.AssetExecutionContext, config: RetrievalConfig, question: Question,
                      embeddings: EmbeddingsResource, vector_store: VectorStoreResource, llm: LLMResource) -> dict:
    """``{"mode", "k", "sources": [source dict, best first]}``: the mode and k travel on to ``rag/answer``."""
    from reference_arch.rag.defs.index import IndexModelError, open_collection
    from reference_arch.rag.multi_query import require_llm
    from reference_arch.rag.retrieval import default_mode, retrieve

    mode = config.mode or default_mode()
    if mode not in RETRIEVAL_MODES or not 1 <= config.k <= MAX_K:
        raise dg.Failure(description=f"retrieval needs mode in {', '.join(RETRIEVAL_MODES)} and "
                                     f"1 <= k <= {MAX_K} (got mode={mode!r}, k={config.k})")
    extra: dict = {}
    try:
        if mode == MULTI_QUERY:
            require_llm(llm)  # before anything is opened or embedded: one line naming the setting
        # before the question is embedded: an index of another model is refused, not queried
        collection = open_collection(embeddings, vector_store)
        if not collection.count():
            from reference_arch.rag.defs.checks import no_documents_message

            built = context.instance.get_latest_materialization_event(dg.AssetKey(["rag", "vector_index"]))
            raise dg.Failure(description=no_documents_message() if built else
                             "the vector index is empty: run `reference-arch materialize rag` first")
        if mode == MULTI_QUERY:
            sources, extra = multi_query_sources(context, config, collection, llm, question, embeddings)
        else:
            sources = retrieve(collection, question.text, embeddings.embed_query(question.text), mode, config.k)
    except (IndexModelError, EmbeddingsError, VectorStoreError, LLMError, ValueError) as err:
        raise dg.Failure(description=str(err)) from None
    context.add_output_metadata({"mode": mode, "k": config.k, "sources": sources_table(sources), **extra})
    return {"mode": mode, "k": config.k, "sources": sources}


def multi_query_sources(context, config: RetrievalConfig, collection, llm: LLMResource, question: Question,
                        embeddings: EmbeddingsResource) -> tuple[list, dict]:
    """``(sources, metadata)`` of multi-query retrieval: the rewrites, and per query (the question first)
    how many documents it found and which of them made the fused top k. The LLM calls follow this run's
    model/policy (``rag/question`` config), as the answer does."""
    from reference_arch.common.metadata import table
    from reference_arch.rag.multi_query import multi_query_retrieve
    from reference_arch.rag.retrieval import default_mode

    base = config.base_mode or default_mode()
    if base not in SEARCH_MODES:
        raise ValueError(f"multi_query base_mode must be one of {', '.join(SEARCH_MODES)} (got {base!r})")
    sources, info = multi_query_retrieve(collection, llm, question.text, embeddings.embed_array, base, config.k,
                                         config.rewrites, config.rerank, question.routing())
    if not info["rewrites"]:
        why = info["rewrite_problem"] or "every line repeated the question or was a heading"
        context.log.warning(f"multi_query: the LLM's rewrite reply was unusable ({why}); searched the question alone")
    queries = [{"query": c["query"], "kind": "question" if i == 0 else f"rewrite {i}", "found": c["found"],
                "in_top_k": len(c["in_top_k"]), "documents": ", ".join(c["in_top_k"])}
               for i, c in enumerate(info["queries"])]
    return sources, {
        "base_mode": base, "reranked": info["reranked"], "rewrites_asked": config.rewrites,
        "rewrites_used": len(info["rewrites"]),
        **({"rewrite_problem": info["rewrite_problem"]} if info["rewrite_problem"] else {}),
        "rewrites": dg.MetadataValue.md("\n".join(f"{i}. {markdown_text(r)}"
                                                  for i, r in enumerate(info["rewrites"], 1)) or "(none usable)"),
        "queries": table(queries, ["kind", "query", ("found", "int"), ("in_top_k", "int"), "documents"]),
        **llm.usage_metadata()}


@dg.asset(
    **asset_defaults("rag"), kinds={"python", "huggingface", "openai"},
    ins={"question": dg.AssetIn(key=["rag", "question"]), "retrieved": dg.AssetIn(key=["rag", "retrieved_sources"])},
    deps=REGISTRY_MODELS,
    description="The answer, citing the numbered sources as [1], [2]: generated by the LLM when an OpenAI-compatible "
                "one is configured, else extractive (the sources' sentences that best answer the question).",
)
def answer(context: dg.AssetExecutionContext, config: AnswerConfig, question: Question, retrieved: dict,
           llm: LLMResource, embeddings: EmbeddingsResource) -> dg.Output:
    answerer = resolve_answerer(config.answerer, llm)
    sources = retrieved["sources"]
    text, model, usage, answer_metadata = compose_answer(question.text, sources, answerer, llm, embeddings,
                                                         question.routing())
    if answerer == "generative":
        text = require_answer(text, model)
    valid, invalid = citations(text, len(sources))
    listed = "\n".join(f"{i}. [{markdown_text(s['title'])}]({s['url']})" if s.get("url")
                       else f"{i}. {markdown_text(s['title'])} ({markdown_text(s['source'])})"
                       for i, s in enumerate(sources, 1))
    # `id` is the source document's id, the field every question job's JSON shares.
    shown = [{"id": s["document_id"], **{k: s[k] for k in ("rank", "title", "source", "url", "score", "document_id",
                                                           "source_type", "chunk_ids", "text")}} for s in sources]
    retrieval = {k: retrieved[k] for k in ("mode", "k")}
    record = answer_record(text, model, usage, shown, question=question.text, answerer=answerer, **retrieval)
    return dg.Output(record, metadata={
        "question": dg.MetadataValue.text(question.text),
        **retrieval,
        # the answer as text: model output starting with '#' would otherwise render as a heading
        "answer": dg.MetadataValue.md(f"{markdown_text(text) or '(empty answer)'}\n\n**Sources**\n\n{listed or 'none'}"),
        "sources": sources_table(sources),
        "citations": dg.MetadataValue.text(", ".join(f"[{n}]" for n in valid) or "none"),
        "invalid_citations": len(invalid),
        **answer_metadata,
        **record_metadata(record),
    })


rag_question_job = dg.define_asset_job(
    "rag_question_job", selection=dg.AssetSelection.assets(question, retrieved_sources, answer),
    executor_def=dg.in_process_executor,  # one process: no per-step process start-up for a short answer
    description="Answer one question from the indexed GitHub, Slack and docs: config "
                "ops.rag__question.config.question (and ops.rag__retrieved_sources.config.k / mode, where mode "
                "multi_query needs an OpenAI-compatible LLM, "
                "ops.rag__answer.config.answerer).",
)
