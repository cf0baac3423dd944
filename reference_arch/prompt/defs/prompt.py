"""Prompt step 1, the prompt: the question (run config) checked against the chosen template's variable rules
and rendered with it; ``prompt/template`` materializes each template file (one partition per file in
``prompt/templates/``) as the prompt's lineage."""

import dagster as dg

from reference_arch.common.locations import OWNERS
from reference_arch.common.questions import Question, QuestionConfig, accept_question, markdown_text
from reference_arch.prompt.templates import (
    DEFAULT_TEMPLATE, TEMPLATES, TemplateInputError, render, template_named, templates_version,
)

templates = dg.StaticPartitionsDefinition(list(TEMPLATES))  # one partition per template file, read at load
TEMPLATE = dg.AssetKey(["prompt", "template"])


class PromptQuestion(QuestionConfig):
    question: str = "What is a series?"


class PromptConfig(dg.Config):
    template: str = DEFAULT_TEMPLATE  # a template file's name (a partition of prompt/template)
    variables: dict[str, str] = {}  # values of the template's variables other than the question, if it has any


def messages_md(messages: list[dict[str, str]]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n\n".join(f"**{m['role']}**: {markdown_text(m['content'])}" for m in messages))


@dg.asset(
    key_prefix=["prompt"], group_name="prompt", partitions_def=templates, owners=OWNERS,
    kinds={"python", "langchain"}, code_version=templates_version(),
    description="One prompt template file per partition: its messages rendered with placeholders (few-shot "
                "examples included), its variable rules, its hash (the data version) and the answer format "
                "it asks for.",
)
def template(context: dg.AssetExecutionContext) -> dg.Output[dict]:
    chosen = TEMPLATES[context.partition_key]
    # Each variable rendered as its own placeholder: the messages as the model will see them.
    messages = render(chosen, {name: f"{{{name}}}" for name in chosen.variables}, check=False)
    rules = {"max_sentences": chosen.max_sentences, "links": chosen.links, "code_block": chosen.code_block}
    variables = {name: r.model_dump(exclude_defaults=True) for name, r in chosen.variables.items()}
    return dg.Output(
        {"name": chosen.name, "hash": chosen.hash, "description": chosen.spec.description, "messages": messages,
         "variables": variables, "examples": len(chosen.spec.examples), **rules},
        data_version=dg.DataVersion(chosen.hash),
        metadata={"template_hash": chosen.hash, "description": chosen.spec.description,
                  "messages": messages_md(messages), "variables": dg.MetadataValue.json(variables),
                  "examples": len(chosen.spec.examples), "expected_sentences": f"1-{chosen.max_sentences}",
                  "expected_links": chosen.links, "code_block": chosen.code_block},
    )


@dg.asset(
    key_prefix=["prompt"], group_name="prompt", owners=OWNERS, kinds={"python"},
    description="The user's question, from run config; refused here if empty or over the length limit.",
)
def question(context: dg.AssetExecutionContext, config: PromptQuestion) -> Question:
    return accept_question(context, config)


@dg.asset(
    key_prefix=["prompt"], group_name="prompt", owners=OWNERS,
    kinds={"python", "langchain"}, code_version=templates_version(),
    ins={"question": dg.AssetIn(key=["prompt", "question"])}, deps=[TEMPLATE],
    description="The question, checked against the variable rules of the template named by run config "
                "(ops.prompt__prompt.config.template, default pandas), rendered into its LangChain "
                "ChatPromptTemplate; the template's hash goes with it.",
)
def prompt(context: dg.AssetExecutionContext, config: PromptConfig, question: Question) -> dict:
    try:
        chosen = template_named(config.template)
        if "question" in config.variables:
            raise TemplateInputError("config.variables may not set 'question': it comes from prompt/question")
        messages = render(chosen, {**config.variables, "question": question.text})
    except ValueError as err:  # an unknown template, or a value its rules refuse: before any model call
        raise dg.Failure(description=str(err)) from None
    context.add_output_metadata({"template": chosen.name, "template_hash": chosen.hash, "prompt": messages_md(messages)})
    return {"template": chosen.name, "template_hash": chosen.hash, "messages": messages}
