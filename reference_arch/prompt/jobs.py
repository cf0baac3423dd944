"""The question job: run with a question in run config, returns the answer synchronously."""

import dagster as dg

prompt_question_job = dg.define_asset_job(
    "prompt_question_job",
    selection=dg.AssetSelection.groups("prompt"),
    executor_def=dg.in_process_executor,  # one process: no per-step process start-up for a short answer
    description="Answer one question with a prompt template: config ops.prompt__question.config.question.",
)
