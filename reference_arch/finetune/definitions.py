"""The fine-tuning code location: GitHub Q&A by month -> leak-free split -> OpenAI chat JSONL ->
LoRA on the pretrain model (or an OpenAI fine-tuning job) -> fine-tuned vs base -> published model."""

import os

from reference_arch.common.locations import location_definitions
from reference_arch.common.resources import llm_resource, trainer_resource
from reference_arch.finetune import evaluation, ingestion, inference, processing, training
from reference_arch.finetune.config import fine_tuning_resource
from reference_arch.finetune.openai_client import openai_client_resource


def resources() -> dict:
    return {
        "fine_tuning": fine_tuning_resource(),
        "trainer": trainer_resource(),
        "openai": openai_client_resource(),
        "llm": llm_resource(model=os.environ.get("REFERENCE_ARCH_FINETUNED_LLM_MODEL") or None),
    }


defs = location_definitions(
    assets=[ingestion.github_issues, ingestion.qa_pairs, processing.train_validation_split, processing.prompts,
            training.fine_tuned_model, evaluation.published_model, inference.question, inference.answer],
    asset_checks=[processing.split_is_disjoint, processing.openai_format, evaluation.better_than_base],
    jobs=[inference.finetuned_question_job],
    resources=resources(),
)
