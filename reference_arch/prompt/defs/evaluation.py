"""Prompt step 3, evaluation: each template partition scored on the evaluation set (questions with
reference answers, ``prompt/evaluation_set.yaml``) - format compliance, answer-to-reference similarity,
length and cost - and a blocking check that fails a template version scoring below the previous version."""

import dagster as dg

from reference_arch.common.llm.errors import LLMError
from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.locations import OWNERS
from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch.prompt.defs.prompt import TEMPLATE, templates
from reference_arch.prompt.evaluation_set import feedback_questions, load_evaluation_set, score
from reference_arch.prompt.templates import TEMPLATES, check_format, render

EVALUATION = dg.AssetKey(["prompt", "template_evaluation"])
PACKAGED_NOTE = "local model: {model}, readable but weak answers; an OpenAI-compatible model scores higher"
OFFLINE_NOTE = ("local model: a tiny model trained here, its answers are noise; the numbers test the "
                "evaluation, not the template")


class EvaluationConfig(dg.Config):
    split: str = "dev"  # dev | test (evaluation_set.split_of)
    limit: int = 4  # questions at most (and as many feedback regression cases): a few keep the local model fast
    max_tokens: int = 128  # answer tokens at most (the llm resource's own limit is for real questions)


def local_note(spec: str) -> str:
    """What the local model's figures mean: a packaged model, or one fine-tuned from it, answers in sentences;
    a model pretrained here only tests the evaluation."""
    from reference_arch.common.llm.packaged import defaults_for, model_label

    return PACKAGED_NOTE.format(model=model_label(spec)) if defaults_for(spec) else OFFLINE_NOTE


def previous_version(context: dg.AssetExecutionContext, template_hash: str) -> dict | None:
    """The metadata of this partition's latest materialization made with another template version."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=EVALUATION, asset_partitions=[context.partition_key]), limit=100).records
    for record in records:
        meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
        if meta.get("template_hash") not in (None, template_hash) and "score" in meta:
            return meta
    return None


def _answers(llm: LLMResource, chosen, questions) -> list[str]:
    try:
        return [llm.generate([(m["role"], m["content"]) for m in render(chosen, {"question": q.question})])
                for q in questions]
    except LLMError as err:
        raise dg.Failure(description=str(err)) from None


@dg.asset(
    key_prefix=["prompt"], group_name="prompt", partitions_def=templates, owners=OWNERS, deps=[TEMPLATE],
    kinds={"python", "langchain"},
    check_specs=[dg.AssetCheckSpec("no_regression", asset=EVALUATION, blocking=True,
                                   description="The template version scores at least its previous version's score.")],
    description="The template of this partition answering the evaluation set (prompt/evaluation_set.yaml, dev "
                "split by default): format compliance rate, cosine similarity of answer to reference (local "
                "MiniLM embeddings), answer length, cost in USD, and the score = mean of compliance and similarity.",
)
def template_evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig, llm: LLMResource,
                        embeddings: EmbeddingsResource):
    chosen = TEMPLATES[context.partition_key]
    try:
        questions = load_evaluation_set(config.split)[: max(1, config.limit)]
        # approved prompt answers (the newest), scored as regression cases but outside the gated score: a new
        # verdict must not change the set that no_regression compares versions on
        cases = feedback_questions(config.split)[-max(1, config.limit):]
    except ValueError as err:
        raise dg.Failure(description=str(err)) from None
    previous = previous_version(context, chosen.hash)  # read before this materialization is stored
    llm = llm.model_copy(update={"max_tokens": config.max_tokens})  # a copy: its own usage and spend
    asked = questions + cases
    answers = _answers(llm, chosen, asked)
    vectors = embeddings.embed_documents([*answers, *(q.reference for q in asked)])
    every = len(asked)
    similarity = [sum(a * b for a, b in zip(vectors[i], vectors[every + i])) for i in range(every)]
    compliant = [check_format(chosen, text)[0] for text in answers]
    n = len(questions)
    rate, mean_similarity = sum(compliant[:n]) / n, sum(similarity[:n]) / n
    regression = ({"feedback_cases": len(cases), "feedback_mean_similarity": round(sum(similarity[n:]) / len(cases), 4)}
                  if cases else {})
    result = score(rate, mean_similarity)
    usage = llm.usage_metadata()
    rows = [{"id": q.id, "compliant": ok, "similarity": round(s, 4), "characters": len(a)}
            for q, a, ok, s in zip(asked, answers, compliant, similarity)]
    offline = {"note": local_note(usage["llm/model"])} if usage["llm/provider"] == "local" else {}
    yield dg.Output(
        {"template": chosen.name, "template_hash": chosen.hash, "score": result, "rows": rows},
        metadata={"template_hash": chosen.hash, "split": config.split, "questions": n, "score": result,
                  "format_compliance_rate": round(rate, 4), "mean_similarity": round(mean_similarity, 4),
                  "mean_answer_characters": round(sum(len(a) for a in answers[:n]) / n, 1), **regression,
                  "cost_usd": usage["llm/cost_usd"], "llm/model": usage["llm/model"], "max_tokens": config.max_tokens,
                  "answers": dg.MetadataValue.json(rows), **offline},
    )
    passed = previous is None or result >= float(previous["score"])
    yield dg.AssetCheckResult(
        check_name="no_regression", passed=passed, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"score": result, **({"previous_score": float(previous["score"]),
                                       "previous_template_hash": previous["template_hash"]} if previous else
                                      {"previous": "none: the first version of this template"})},
        description=("no previous version of this template to compare with" if previous is None
                     else None if passed else f"score {result} is below the previous version's {previous['score']}"),
    )
