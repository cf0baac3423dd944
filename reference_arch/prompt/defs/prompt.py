"""Prompt step 1, the prompt: the question (run config) rendered with a versioned template; ``prompt/template``
materializes each template (one partition per template) as the prompt's lineage."""

import dagster as dg

from reference_arch.common.locations import OWNERS
from reference_arch.common.questions import QuestionConfig, accept_question, markdown_text
from reference_arch.prompt.templates import DEFAULT_TEMPLATE, TEMPLATES, render, template_named, templates_version

templates = dg.StaticPartitionsDefinition(list(TEMPLATES))
TEMPLATE = dg.AssetKey(["prompt", "template"])
PLACEHOLDER = "{question}"  # what the template asset renders in the question's place


class PromptQuestion(QuestionConfig):
    question: str = "What is a series?"


class PromptConfig(dg.Config):
    template: str = DEFAULT_TEMPLATE  # a key of prompt.templates.TEMPLATES (a partition of prompt/template)


def messages_md(messages: list[dict[str, str]]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n\n".join(f"**{m['role']}**: {markdown_text(m['content'])}" for m in messages))


@dg.asset(
    key_prefix=["prompt"], group_name="prompt", partitions_def=templates, owners=OWNERS,
    kinds={"python", "langchain"}, code_version=templates_version(),
    description="One prompt template per partition: its messages rendered with a placeholder question, "
                "its hash (the data version) and the answer format it asks for.",
)
def template(context: dg.AssetExecutionContext) -> dg.Output[dict]:
    chosen = TEMPLATES[context.partition_key]
    messages = render(chosen, PLACEHOLDER)
    rules = {"max_sentences": chosen.max_sentences, "links": chosen.links, "code_block": chosen.code_block}
    return dg.Output(
        {"name": chosen.name, "hash": chosen.hash, "text": chosen.text, "messages": messages, **rules},
        data_version=dg.DataVersion(chosen.hash),
        metadata={"template_hash": chosen.hash, "messages": messages_md(messages),
                  "expected_sentences": f"1-{chosen.max_sentences}", "expected_links": chosen.links,
                  "code_block": chosen.code_block},
    )


@dg.asset(
    key_prefix=["prompt"], group_name="prompt", owners=OWNERS, kinds={"python"},
    description="The user's question, from run config; refused here if empty or over the length limit.",
)
def question(context: dg.AssetExecutionContext, config: PromptQuestion) -> str:
    return accept_question(context, config)


@dg.asset(
    key_prefix=["prompt"], group_name="prompt", owners=OWNERS,
    kinds={"python", "langchain"}, code_version=templates_version(),
    ins={"question": dg.AssetIn(key=["prompt", "question"])}, deps=[TEMPLATE],
    description="The question rendered into the LangChain ChatPromptTemplate named by run config "
                "(ops.prompt__prompt.config.template, default pandas); the template's hash goes with it.",
)
def prompt(context: dg.AssetExecutionContext, config: PromptConfig, question: str) -> dict:
    try:
        chosen = template_named(config.template)
    except ValueError as err:
        raise dg.Failure(description=str(err)) from None
    messages = render(chosen, question)
    context.add_output_metadata({"template": chosen.name, "template_hash": chosen.hash, "prompt": messages_md(messages)})
    return {"template": chosen.name, "template_hash": chosen.hash, "messages": messages}
