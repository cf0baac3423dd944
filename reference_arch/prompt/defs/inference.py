"""Prompt step 2, inference: the LLM answers the rendered prompt; ``prompt_question_job`` runs one question
synchronously with the question (and template) in run config."""

import dagster as dg

from reference_arch.common.llm.errors import LLMError
from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.locations import OWNERS
from reference_arch.common.questions import (
    REGISTRY_MODELS, Question, answer_metadata, answer_record, markdown_text, record_metadata, require_answer,
)
from reference_arch.prompt.defs import prompt as prompt_step
from reference_arch.prompt.templates import check_format, template_named


@dg.asset(
    key_prefix=["prompt"], group_name="prompt", owners=OWNERS,
    kinds={"python", "langchain", "huggingface", "openai"},
    ins={"question": dg.AssetIn(key=["prompt", "question"]), "prompt": dg.AssetIn(key=["prompt", "prompt"])},
    deps=REGISTRY_MODELS,
    check_specs=[dg.AssetCheckSpec("answer_format", asset=dg.AssetKey(["prompt", "answer"]),
                                   description="The answer keeps the format its template asks for.")],
    description="The LLM's answer to the rendered prompt (local registry model, or OpenAI when configured).",
)
def answer(context: dg.AssetExecutionContext, question: Question, prompt: dict, llm: LLMResource):
    chosen = template_named(prompt["template"])  # the template the stored prompt was rendered with
    messages = [(m["role"], m["content"]) for m in prompt["messages"]]
    try:
        text = llm.generate(messages, **question.routing())
    except LLMError as err:
        raise dg.Failure(description=str(err)) from None
    usage = llm.usage()
    text = require_answer(text, usage["model"])
    passed, measured = check_format(chosen, text)
    record = answer_record(text, usage["model"], usage, question=question.text, template=chosen.name,
                           template_hash=prompt["template_hash"])
    yield dg.Output(
        record,
        metadata=answer_metadata(question.text, markdown_text(text) or "_(empty answer)_", template=chosen.name,
                                 template_hash=prompt["template_hash"], **llm.usage_metadata(),
                                 **record_metadata(record)),
    )
    yield dg.AssetCheckResult(
        check_name="answer_format",
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={**measured, "expected_sentences": f"1-{chosen.max_sentences}", "expected_links": chosen.links},
        description=None if passed else f"expected 1-{chosen.max_sentences} sentences and {chosen.links} links",
    )


prompt_question_job = dg.define_asset_job(
    "prompt_question_job",
    selection=dg.AssetSelection.assets(prompt_step.question, prompt_step.prompt, answer),
    executor_def=dg.in_process_executor,  # one process: no per-step process start-up for a short answer
    description="Answer one question with a prompt template: config ops.prompt__question.config.question "
                "(and ops.prompt__prompt.config.template, one of the prompt/template partitions).",
)
