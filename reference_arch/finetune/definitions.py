"""The fine-tuning code location, one module per step in ``defs/``: ingestion (GitHub Q&A by month) ->
processing (leak-free split -> grounded examples in OpenAI chat JSONL) -> training (LoRA on the packaged
instruct model, or an OpenAI fine-tuning job) -> evaluation (fine-tuned vs base; the published model) -> inference; and preference (DPO pairs from
feedback, DPO through the shared trainer, gated on held-out preference accuracy)."""

from reference_arch.common import settings
from reference_arch.common.locations import location_definitions
from reference_arch.common.resources import embeddings_resource, llm_resource, trainer_resource
from reference_arch.finetune import defs as finetune_defs
from reference_arch.finetune.config import PreferenceTuningResource, fine_tuning_resource
from reference_arch.finetune.openai_client import openai_client_resource


def resources() -> dict:
    return {
        "fine_tuning": fine_tuning_resource(),
        "preference_tuning": PreferenceTuningResource(),
        "trainer": trainer_resource(),
        "embeddings": embeddings_resource(),  # the finetuned answer's sources: the most similar training replies
        "openai": openai_client_resource(),
        "llm": llm_resource(model=settings.value("finetuned_llm_model")),
    }


defs = location_definitions(finetune_defs, resources=resources())
