"""The question job: run with a question in run config, returns the answer synchronously."""

import dagster as dg

from reference_arch.prompt import assets

prompt_question_job = dg.define_asset_job(
    "prompt_question_job",
    selection=dg.AssetSelection.assets(assets.question, assets.prompt, assets.answer),
    executor_def=dg.in_process_executor,  # one process: no per-step process start-up for a short answer
    description="Answer one question with a prompt template: config ops.prompt__question.config.question "
                "(and ops.prompt__prompt.config.template, one of the prompt/template partitions).",
)
