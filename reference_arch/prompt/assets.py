"""The seed's prompt-engineering graph: question -> prompt -> answer, one partition per template."""

import dagster as dg

from reference_arch.common.llm import LLMError, LLMResource
from reference_arch.common.locations import OWNERS
from reference_arch.common.questions import REGISTRY_MODELS, QuestionConfig, accept_question, answer_metadata, \
    answer_record, markdown_text
from reference_arch.prompt.templates import TEMPLATES, chat_prompt, check_format, templates_version

templates = dg.StaticPartitionsDefinition(list(TEMPLATES))


class PromptQuestion(QuestionConfig):
    question: str = "What is a series?"


@dg.asset(
    key_prefix=["prompt"], group_name="prompt", partitions_def=templates, owners=OWNERS, kinds={"python"},
    description="The user's question, from run config; refused here if empty or over the length limit.",
)
def question(context: dg.AssetExecutionContext, config: PromptQuestion) -> str:
    return accept_question(context, config)


@dg.asset(
    key_prefix=["prompt"], group_name="prompt", partitions_def=templates, owners=OWNERS,
    kinds={"python", "langchain"}, code_version=templates_version(),
    ins={"question": dg.AssetIn(key=["prompt", "question"])},
    description="The question rendered into this partition's LangChain ChatPromptTemplate (versioned by hash).",
)
def prompt(context: dg.AssetExecutionContext, question: str) -> list[dict[str, str]]:
    template = TEMPLATES[context.partition_key]
    messages = chat_prompt(template).format_messages(question=question)
    rendered = [{"role": "user" if m.type == "human" else m.type, "content": str(m.content)} for m in messages]
    context.add_output_metadata({
        "template": template.name,
        "template_hash": template.hash,
        "prompt": dg.MetadataValue.md("\n\n".join(f"**{m['role']}**: {markdown_text(m['content'])}" for m in rendered)),
    })
    return rendered


@dg.asset(
    key_prefix=["prompt"], group_name="prompt", partitions_def=templates, owners=OWNERS,
    kinds={"python", "langchain", "huggingface", "openai"},
    ins={"question": dg.AssetIn(key=["prompt", "question"]), "prompt": dg.AssetIn(key=["prompt", "prompt"])},
    deps=REGISTRY_MODELS,
    check_specs=[dg.AssetCheckSpec("answer_format", asset=dg.AssetKey(["prompt", "answer"]),
                                   description="The answer keeps the format its template asks for.")],
    description="The LLM's answer to the rendered prompt (local registry model, or OpenAI when configured).",
)
def answer(context: dg.AssetExecutionContext, question: str, prompt: list[dict[str, str]], llm: LLMResource):
    template = TEMPLATES[context.partition_key]
    messages = [(m["role"], m["content"]) for m in prompt]
    try:
        text = llm.generate(messages)
    except LLMError as err:
        raise dg.Failure(description=str(err)) from None
    usage = llm.usage()
    passed, measured = check_format(template, text)
    yield dg.Output(
        answer_record(text, usage["model"], usage, question=question, template=template.name,
                      template_hash=template.hash),
        metadata=answer_metadata(question, markdown_text(text) or "_(empty answer)_", template=template.name,
                                 template_hash=template.hash, **llm.usage_metadata()),
    )
    yield dg.AssetCheckResult(
        check_name="answer_format",
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={**measured, "expected_sentences": f"1-{template.max_sentences}", "expected_links": template.links},
        description=None if passed else f"expected 1-{template.max_sentences} sentences and {template.links} links",
    )
