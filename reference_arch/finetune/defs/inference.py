"""``finetuned_question_job``: a question answered by the published fine-tuned model.

The model is the newest ``code-lm-github`` in the registry (local backend) or the published OpenAI
fine-tuned model; ``REFERENCE_ARCH_FINETUNED_LLM_MODEL`` (or the ``llm`` resource's ``model``) picks
another. The question goes in the way the model was trained (``grounding.py``): the grounded-answer prompt
with the three training replies most similar to the question as its numbered sources.
"""

import json

import dagster as dg

from reference_arch.common.llm.errors import LLMError
from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.locations import asset_defaults
from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch.common.questions import Question, QuestionConfig, accept_question, answer_metadata, answer_record, \
    markdown_text, record_metadata, require_answer
from reference_arch.finetune.config import FineTuningResource, finetune_dir
from reference_arch.finetune.defs.evaluation import published_model


class FinetunedQuestion(QuestionConfig):
    question: str = "How do I configure the cache directory?"


def finetuned_llm(llm: LLMResource, fine_tuning: FineTuningResource) -> LLMResource:
    """``llm`` pointed at the published fine-tuned model, unless a model was set explicitly."""
    if llm.model:
        return llm
    settings = dict(base_url=llm.base_url, api_key=llm.api_key, temperature=llm.temperature,
                    max_tokens=llm.max_tokens, timeout=llm.timeout, max_retries=llm.max_retries, cache=llm.cache,
                    device=llm.device)
    if fine_tuning.resolved_backend() == "openai":
        path = finetune_dir() / "openai_model.json"
        if not path.exists():
            raise dg.Failure("no fine-tuned OpenAI model is published yet: `reference-arch materialize finetune`")
        return LLMResource(provider="openai", model=json.loads(path.read_text())["name"], **settings)
    from reference_arch.common.registry import ModelNotFoundError, ModelRegistry

    try:
        ModelRegistry().get(fine_tuning.output_name)
    except ModelNotFoundError:
        raise dg.Failure(f"no fine-tuned model {fine_tuning.output_name!r} in the registry yet: "
                         "`reference-arch materialize finetune` (after pretrain)") from None
    return LLMResource(provider="local", model=f"registry:{fine_tuning.output_name}@latest", **settings)


@dg.asset(**asset_defaults("finetune"), kinds={"python"},
          description="The user's question, from run config; refused here if empty or over the length limit.")
def question(context: dg.AssetExecutionContext, config: FinetunedQuestion) -> Question:
    return accept_question(context, config)


@dg.asset(
    **asset_defaults("finetune"), kinds={"python", "huggingface", "openai"},
    ins={"question": dg.AssetIn(key=["finetune", "question"])},
    deps=[published_model],
    description="The fine-tuned model's answer, asked as it was trained: the grounded-answer prompt with the "
                "three most similar maintainers' replies of the training split as numbered sources.",
)
def answer(context: dg.AssetExecutionContext, question: Question, llm: LLMResource,
           fine_tuning: FineTuningResource, embeddings: EmbeddingsResource) -> dg.Output:
    from reference_arch.common.grounded_prompt import build_messages
    from reference_arch.finetune.defs.processing import read_split
    from reference_arch.finetune.grounding import similar_replies
    from reference_arch.finetune.split import TRAIN

    model = finetuned_llm(llm, fine_tuning)
    try:
        replies = read_split()[TRAIN]
    except dg.Failure as err:  # no split in this home (a model published elsewhere): asked without sources
        context.log.warning(f"{err.description}; the question is asked without sources")
        replies = []
    sources = similar_replies(question.text, replies, embeddings.embed_array)
    try:
        text = model.generate(build_messages(question.text, sources))
    except LLMError as err:
        raise dg.Failure(description=str(err)) from None
    usage = model.usage()
    text = require_answer(text, usage["model"])
    record = answer_record(text, usage["model"], usage, question=question.text, sources=sources)
    return dg.Output(record, metadata=answer_metadata(question.text, markdown_text(text) or "_(empty answer)_",
                                                      **model.usage_metadata(), **record_metadata(record)))


finetuned_question_job = dg.define_asset_job(
    "finetuned_question_job",
    selection=dg.AssetSelection.assets(question, answer),
    executor_def=dg.in_process_executor,  # one process: no per-step process start-up for a short answer
    description="Answer one question with the fine-tuned model: config ops.finetune__question.config.question.",
)
