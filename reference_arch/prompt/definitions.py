"""The prompt-engineering code location."""

from reference_arch.common.locations import location_definitions
from reference_arch.common.resources import llm_resource
from reference_arch.prompt import assets
from reference_arch.prompt.jobs import prompt_question_job

defs = location_definitions(
    assets=[assets.template, assets.question, assets.prompt, assets.answer],
    jobs=[prompt_question_job],
    resources={"llm": llm_resource()},
)
