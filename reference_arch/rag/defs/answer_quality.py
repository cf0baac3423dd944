"""``rag/answer_quality``: the question job's answers to the evaluation questions, measured (dev and test apart).

For the questions of the evaluation sets whose answering documents are indexed (as
``rag/retrieval_evaluation`` judges them; ``max_questions`` a split, 20 by default), the asset retrieves and answers exactly as ``rag_question_job``
does (``retrieval.retrieve`` with the default mode, ``inference.compose_answer`` with the resolved
answerer) and measures (``common/answer_quality.py`` defines each):

- ``{split}/citation_validity``: the share of ``[n]`` citations that name a retrieved source (absent when
  the split's answers cite nothing); ``{split}/cited_answers``: the share of answers with a valid citation;
- ``{split}/groundedness``: the mean share of answer sentences supported by a source they cite (MiniLM
  cosine to the source's sentences at least ``threshold``, ``GROUNDED_SIMILARITY`` = 0.57, chosen on dev);
- ``{split}/answer_relevance``: the mean cosine similarity of question and answer embeddings;
- with ``judge`` on: ``{split}/judge_faithfulness`` and ``{split}/judge_relevance`` (0..1), from the LLM
  grading each answer with a short rubric (``JUDGE_RUBRIC``). Unset, it is on with an OpenAI-compatible
  model and, with the packaged local one, as measured on dev (``resolve_judge``); the metadata says which.

The judge is our own rubric through ``LLMResource`` rather than a library: ragas would downgrade the
pinned ``openai`` (to 1.x); ``deepeval`` 4.3 installs without touching ``openai`` but downgrades ``click``,
``rich`` and ``tabulate``, adds five pytest plugins to the test run and PostHog telemetry. The judge is the
same model that answered unless ``judge_model`` names another (a model grading itself is lenient).

Extractive answers (the offline default, as measured) quote the sources' sentences, so their groundedness and
citation validity are 1 by construction (the metadata says so); answer relevance still varies.

Each run also re-checks the threshold: ``threshold/dev_chosen`` (the rule applied to this run's dev
answers) and, on each split, the share of grounded sentences and of invented ones (another question's
answer sentences cited as if from this question's sources) that reach the threshold.

The numbers are numeric metadata, plotted run after run. The WARN check ``answer_quality_holds`` fails
when one of them drops more than ``max_drop`` below the previous materialization's value.
"""

from typing import Optional

import dagster as dg

from reference_arch.common.llm.errors import LLMError
from reference_arch.common.llm.packaged import model_label
from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.locations import asset_defaults
from reference_arch.common.metadata import table
from reference_arch.common.vector_store import SEARCH_MODES, VectorStoreError, VectorStoreResource
from reference_arch.common.vector_store.embeddings import EmbeddingsError, EmbeddingsResource
from reference_arch.common.answer_quality import GROUNDED_SIMILARITY, INVENTED_PASS_RATE
from reference_arch.rag.config import EVAL_SET_ENV, eval_set_paths
from reference_arch.rag.defs.evaluation import retrieval_evaluation
from reference_arch.rag.defs.index import vector_index
from reference_arch.rag.question_sets import SPLITS, sample_order

ANSWER_QUALITY = dg.AssetKey(["rag", "answer_quality"])
CHECK = "answer_quality_holds"
# the measures the check compares with the previous run, per split
TRACKED = ("citation_validity", "cited_answers", "groundedness", "answer_relevance", "judge_faithfulness",
           "judge_relevance")
JUDGE_OFF = ("off by default for {model}: a local model judges only where bench/bench_llm.py shows it ranks real "
             "answers above invented ones; run config judge: true turns it on")


def resolve_judge(configured: Optional[bool], llm: LLMResource) -> bool:
    """``configured``, else on with an OpenAI-compatible model, else the packaged model's measured default."""
    from reference_arch.common.llm.packaged import defaults_for

    if configured is not None:
        return configured
    if llm.resolved_provider() == "openai":
        return True
    packaged = defaults_for(llm.resolved_model())
    return bool(packaged and packaged.judge)


class AnswerQualityConfig(dg.Config):
    k: int = 5
    mode: Optional[str] = None  # dense | keyword | hybrid; unset: the question job's default
    answerer: Optional[str] = None  # extractive | generative; unset: as rag/answer resolves it
    # per split, 0: all. A stable sample across the sets (by a hash of the question id), so each run
    # measures the same questions; 20 keep `reference-arch materialize rag` about a minute longer
    # offline and cost 80 LLM calls with one (an answer and a grade each).
    max_questions: int = 20
    threshold: float = GROUNDED_SIMILARITY  # cosine a supported sentence reaches
    # grade with the LLM; unset: on with an OpenAI-compatible model, and with a packaged one as measured
    # (PackagedModel.judge: off for SmolLM2-135M, which did not tell real answers from invented ones on dev)
    judge: Optional[bool] = None
    judge_model: Optional[str] = None  # unset: the resource's model
    max_drop: float = 0.02  # the check warns when a measure falls more than this below the previous run's
    question_sets: list[str] = []  # YAML files; default: REFERENCE_ARCH_RAG_EVAL_SET, else rag/eval_sets/*.yaml


def judged_questions(sets: dict, collection) -> list:
    """The questions whose answering documents are indexed (as ``retrieval_evaluation`` judges them)."""
    from reference_arch.rag.defs.processing import documents_path, read_rows
    from reference_arch.rag.question_sets import answerable, document_names

    docs = read_rows(documents_path(), ["id", "format", "text"])
    names = document_names([d for d in docs if d["id"] in set(collection.chunk_ids().values())])
    return [q for questions in sets.values() for q in questions if answerable(q, names)]


def invented_scores(rows: list[dict], embed) -> list[float]:
    """Each answer's sentences cited as if from the next answer's sources (within one split, in order; a
    pair of answers sharing a retrieved document is skipped: its sentences may truly be supported):
    their support scores, the negatives for the threshold."""
    from reference_arch.common.answer_quality import support_scores

    scores: list[float] = []
    for i, row in enumerate(rows):
        other = rows[(i + 1) % len(rows)]
        if other is row or {s["document_id"] for s in row["sources"]} & {s["document_id"] for s in other["sources"]}:
            continue
        cited = sorted({n for c in other["scores"]["sentence_citations"] for n in c
                        if 1 <= n <= len(other["sources"])}) or [1]
        sentences = [(s, cited) for s in row["scores"]["sentence_texts"]]
        scores.extend(support_scores(sentences, other["sources"], embed))
    return scores


def previous_metadata(context: dg.AssetExecutionContext) -> Optional[dict]:
    """The metadata of the latest earlier materialization (read before this one is stored)."""
    event = context.instance.get_latest_materialization_event(ANSWER_QUALITY)
    if event is None or event.asset_materialization is None:
        return None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def drop_check(now: dict, before: Optional[dict], max_drop: float) -> dg.AssetCheckResult:
    """WARN when a tracked measure fell more than ``max_drop`` below the previous run's value."""
    keys = [f"{split}/{m}" for split in SPLITS for m in TRACKED]
    if before is None:
        return dg.AssetCheckResult(check_name=CHECK, passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description="first run: no earlier materialization to compare with")
    compared = [k for k in keys if isinstance(now.get(k), (int, float)) and isinstance(before.get(k), (int, float))]
    drops = {k: round(before[k] - now[k], 4) for k in compared if before[k] - now[k] > max_drop}
    changed = ("" if before.get("answerer") == now.get("answerer")
               else f" (answerer {before.get('answerer')} -> {now.get('answerer')})")
    return dg.AssetCheckResult(
        check_name=CHECK, passed=not drops, severity=dg.AssetCheckSeverity.WARN,
        description=("; ".join(f"{k} {before[k]:.3f} -> {now[k]:.3f}" for k in drops) + changed) if drops
        else f"{len(compared)} measures within {max_drop} of the previous run's{changed}",
        metadata={"compared": len(compared), "dropped": len(drops), "max_drop": max_drop,
                  **{f"drop/{k}": v for k, v in drops.items()}})


def mean(values: list[float]) -> Optional[float]:
    return round(sum(values) / len(values), 4) if values else None


def split_metadata(split: str, rows: list[dict]) -> dict:
    scores = [r["scores"] for r in rows]
    cited = sum(s["citations"] for s in scores)
    meta: dict = {f"{split}/questions": len(rows)}
    if cited:
        meta[f"{split}/citation_validity"] = round(sum(s["valid_citations"] for s in scores) / cited, 4)
    measures = {"cited_answers": [1.0 if s["valid_citations"] else 0.0 for s in scores],
                "groundedness": [s["groundedness"] for s in scores],
                "answer_relevance": [s["relevance"] for s in scores],
                "judge_faithfulness": [r["verdict"]["faithfulness"] for r in rows if r.get("verdict")],
                "judge_relevance": [r["verdict"]["relevance"] for r in rows if r.get("verdict")]}
    meta.update({f"{split}/{name}": mean(values) for name, values in measures.items() if values})
    if any("verdict" in r for r in rows):
        meta[f"{split}/judge_unparsed"] = sum(1 for r in rows if "verdict" in r and r["verdict"] is None)
    return meta


def quality_metadata(config: AnswerQualityConfig, paths, sets: dict, questions: list, rows: dict, invented: dict,
                     answerer: str, model: str | None, mode: str, judging: bool, llm: LLMResource) -> dict:
    """The asset's metadata: settings, the threshold's rule and its pass rates, and each split's measures."""
    from reference_arch.common.answer_quality import choose_threshold, pass_rate

    metadata: dict = {"answerer": answerer, "model": model or "none", "mode": mode, "k": config.k,
                      "questions": sum(len(v) for v in sets.values()), "judged": len(questions),
                      "measured": sum(len(r) for r in rows.values()),
                      "threshold": config.threshold,
                      "threshold_rule": dg.MetadataValue.text(
                          f"a sentence is supported when its MiniLM cosine to a sentence of a source it cites is at "
                          f"least {config.threshold}; {GROUNDED_SIMILARITY} is the smallest value at most "
                          f"{INVENTED_PASS_RATE:.0%} of invented dev sentences reach (common/answer_quality.py)"),
                      "question_sets": dg.MetadataValue.text(", ".join(str(p) for p in paths))}
    if answerer == "extractive":
        metadata["grounded_by_construction"] = dg.MetadataValue.text(
            "extractive answers quote their sources' sentences, each cited: groundedness and citation validity "
            "are 1 by construction, not a finding; answer relevance still varies")
    metadata["judge"] = (dg.MetadataValue.text(f"LLM judge: {config.judge_model or llm.resolved_model()}")
                         if judging else dg.MetadataValue.text(
                             JUDGE_OFF.format(model=model_label(llm.resolved_model())) if config.judge is None
                             else "off: judge is false in run config"))
    dev_chosen = choose_threshold(invented["dev"])
    if dev_chosen is not None:
        metadata["threshold/dev_chosen"] = dev_chosen
    for split, split_rows in rows.items():
        metadata.update(split_metadata(split, split_rows))
        grounded = [s for r in split_rows for s in r["scores"]["support"]]
        for name, scores in (("grounded", grounded), ("invented", invented[split])):
            rate = pass_rate(scores, config.threshold)
            if rate is not None:
                metadata[f"threshold/{split}_{name}_pass"] = round(rate, 4)
    return metadata


def answer_and_measure(context, by_split: dict, collection, mode: str, config: AnswerQualityConfig, answerer: str,
                       llm: LLMResource, embeddings: EmbeddingsResource, embed, judging: bool):
    """The question job's retrieval and answer for each question of ``by_split`` (split -> questions), scored
    (``score_answer``) and, when ``judging``, judged: ``({split: [row]}, the answering model or None)``."""
    from reference_arch.common.answer_quality import JUDGE_TOKENS, judge_messages, parse_verdict, score_answer
    from reference_arch.rag.defs.inference import build_messages, compose_answer
    from reference_arch.rag.retrieval import retrieve

    rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
    model = None
    for split, chosen in by_split.items():
        vectors = embed([q.question for q in chosen]) if chosen else []
        for q, vector in zip(chosen, vectors):
            sources = retrieve(collection, q.question, vector, mode, config.k)
            text, model, _, _ = compose_answer(q.question, sources, answerer, llm, embeddings)
            row = {"question": q, "sources": sources, "answer": text,
                   "scores": score_answer(q.question, text, sources, embed, config.threshold)}
            if judging:
                reply = llm.generate(judge_messages(build_messages(q.question, sources)[1][1], text),
                                     model=config.judge_model, max_tokens=JUDGE_TOKENS)
                row["verdict"] = parse_verdict(reply)
            rows[split].append(row)
            if len(rows[split]) % 20 == 0:
                context.log.info(f"{split}: answered and measured {len(rows[split])}/{len(chosen)}")
    return rows, model


def per_question_table(rows: dict[str, list[dict]]) -> dg.TableMetadataValue:
    return table(
        [{"set": r["question"].set_name, "id": r["question"].id, "part": split, "question": r["question"].question,
          "answer": r["answer"], "citations": r["scores"]["citations"], "valid": r["scores"]["valid_citations"],
          "groundedness": round(r["scores"]["groundedness"], 4), "relevance": round(r["scores"]["relevance"], 4),
          **({"judge_faithfulness": r["verdict"]["faithfulness"], "judge_relevance": r["verdict"]["relevance"]}
             if r.get("verdict") else {})}
         for split, split_rows in rows.items() for r in split_rows],
        ["set", "id", "part", "question", "answer", ("citations", "int"), ("valid", "int"), ("groundedness", "float"),
         ("relevance", "float"), ("judge_faithfulness", "float"), ("judge_relevance", "float")], max_chars=400)


@dg.asset(
    **asset_defaults("rag"), kinds={"python", "openai"}, deps=[vector_index, retrieval_evaluation],
    check_specs=[dg.AssetCheckSpec(CHECK, asset=ANSWER_QUALITY,
                                   description="No answer quality measure (citation validity, groundedness, answer "
                                               "relevance, the judge's scores; dev and test) dropped more than "
                                               "max_drop below the previous materialization's (WARN).")],
    description="The question job's answers to the evaluation questions, measured on dev and test: citation "
                "validity, groundedness (MiniLM similarity of each sentence to its cited source), answer relevance, "
                "and an LLM judge's faithfulness and relevance when an OpenAI-compatible LLM is configured.",
)
def answer_quality(context: dg.AssetExecutionContext, config: AnswerQualityConfig, llm: LLMResource,
                   embeddings: EmbeddingsResource, vector_store: VectorStoreResource):
    from reference_arch.common.answer_quality import memoized
    from reference_arch.rag.defs.index import IndexModelError, open_collection
    from reference_arch.rag.defs.inference import resolve_answerer
    from reference_arch.rag.question_sets import QuestionSetError, load_question_sets
    from reference_arch.rag.retrieval import default_mode

    mode = config.mode or default_mode()
    if mode not in SEARCH_MODES or not 1 <= config.k <= 50 or not 0 <= config.threshold <= 1:
        raise dg.Failure(description=f"answer quality needs mode in {', '.join(SEARCH_MODES)}, 1 <= k <= 50 and "
                                     f"0 <= threshold <= 1 (got mode={mode!r}, k={config.k}, "
                                     f"threshold={config.threshold})")
    paths = config.question_sets or eval_set_paths()
    try:
        sets = load_question_sets(paths)
    except QuestionSetError as err:
        raise dg.Failure(description=f"{err} (question sets come from run config question_sets or {EVAL_SET_ENV})")
    answerer = resolve_answerer(config.answerer, llm)
    judging = resolve_judge(config.judge, llm)
    previous = previous_metadata(context)  # before this materialization is stored
    embed = memoized(embeddings.embed_array)  # source sentences are read three times
    try:
        collection = open_collection(embeddings, vector_store)
        questions = judged_questions(sets, collection)
        by_split = {split: [q for q in questions if q.split == split] for split in SPLITS}
        if config.max_questions:
            by_split = {s: sorted(qs, key=sample_order)[:config.max_questions] for s, qs in by_split.items()}
        rows, model = answer_and_measure(context, by_split, collection, mode, config, answerer, llm, embeddings,
                                         embed, judging)
        invented = {split: invented_scores(split_rows, embed) for split, split_rows in rows.items()}
    except (IndexModelError, EmbeddingsError, VectorStoreError, LLMError) as err:
        raise dg.Failure(description=str(err)) from None

    metadata = quality_metadata(config, paths, sets, questions, rows, invented, answerer, model, mode, judging,
                                llm)
    if judging or answerer == "generative":
        metadata.update(llm.usage_metadata())
    metadata["per_question"] = per_question_table(rows)
    yield dg.MaterializeResult(metadata=metadata)
    yield drop_check({k: (v.value if isinstance(v, dg.MetadataValue) else v) for k, v in metadata.items()},
                     previous, config.max_drop)
