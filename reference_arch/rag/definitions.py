"""The RAG code location, one module per step in ``defs/``: ingestion (GitHub, Slack and docs with dlt) ->
processing (documents -> chunks -> embeddings) -> index (the vector index) -> inference (``rag_question_job``
answering with cited sources), with evaluation (retrieval recall@k on dev and test questions), answer
quality (citation validity, groundedness, relevance, an LLM judge), checks and automation (schedule,
sensors, jobs)."""

from reference_arch.common.locations import location_definitions
from reference_arch.common.resources import embeddings_resource, llm_resource
from reference_arch.common.vector_store import vector_store_resource
from reference_arch.rag import defs as rag_defs

defs = location_definitions(
    rag_defs,
    resources={"llm": llm_resource(), "embeddings": embeddings_resource(), "vector_store": vector_store_resource()},
)
