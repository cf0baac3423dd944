"""The question job: run with a question in run config, returns the answer synchronously."""

import dagster as dg

prompt_question_job = dg.define_asset_job(
    "prompt_question_job",
    selection=dg.AssetSelection.groups("prompt"),
    description="Answer one question with a prompt template: config ops.prompt__question.config.question.",
)
