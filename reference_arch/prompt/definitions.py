"""The prompt-engineering code location: defs/prompt (question -> prompt, with versioned templates) ->
defs/inference (answer, and ``prompt_question_job``) -> defs/evaluation (each template scored); defs/feedback
(verdicts on any question run's answer, ``feedback_job``, and the evaluation cases made from them)."""

from reference_arch.common.locations import location_definitions
from reference_arch.common.resources import embeddings_resource, llm_resource
from reference_arch.prompt import defs as prompt_defs

defs = location_definitions(prompt_defs, resources={"llm": llm_resource(), "embeddings": embeddings_resource()})
